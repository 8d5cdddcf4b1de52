"""Real Redis topologies for the tests, each on free ports of its own: a TLS redis-server with a throwaway CA
(made here with openssl), an ACL user, and a master + replica + three sentinels. The shared 127.0.0.1:6379 is
never touched. A test whose binary is missing is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

#: The master's name the sentinels monitor.
MASTER = "mymaster"
#: Sentinel timing: a master silent this long is subjectively down; quorum 2 of 3 makes it objectively down.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
#: The ACL rules blast's programs need (docs/OPERATIONS.md, "Redis ACL"), for the deployment prefix `{p}`.
ACL_RULES = "resetkeys ~{p}:* ~autoclaim:{p}:* resetchannels &{p}:* +@all -@dangerous +info"


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    return binary


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} on port {port} did not start")


class Node:
    """One redis-server (or sentinel) process on a free port."""

    def __init__(self, workdir: Path, name: str, args: list[str], *, port: int | None = None) -> None:
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "server.log").open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [_binary(), *self.args], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        _wait_port(self.port, self.proc, self.name)

    def kill(self) -> None:
        """SIGKILL: as a crashed host (no clean shutdown, no last words to the replicas)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def data_node(workdir: Path, name: str, *extra: str) -> Node:
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "."]
    return Node(workdir, name, [*args, *extra], port=port)


# --- TLS ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    """A throwaway CA, a server certificate it signed (for 127.0.0.1 and localhost), and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(workdir: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = workdir / "pki"
    d.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=blast test {name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d,
        )  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.cnf", "-out", "server.crt", cwd=d,
    )  # fmt: skip
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "other-ca.crt")


# --- Sentinel -----------------------------------------------------------------------------------------------
class SentinelSet:
    """A master, one replica and three sentinels (quorum 2) watching them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.master = data_node(workdir, "master")
        self.replica = data_node(workdir, "replica")
        self.replica.args += ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.sentinels = [self._sentinel(i) for i in range(3)]

    def _sentinel(self, i: int) -> Node:
        port = free_port()
        conf = self.workdir / f"sentinel{i}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        return Node(self.workdir, f"sentinel{i}", [str(conf), "--sentinel"], port=port)

    @property
    def sentinels_setting(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self, timeout_s: float = 30.0) -> None:
        self.master.start()
        self.replica.start()
        for s in self.sentinels:
            s.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not see the master, the replica and each other in time")

    def _ready(self) -> bool:
        try:
            with redis.Redis(port=self.replica.port, socket_timeout=1) as r:
                if r.info("replication").get("master_link_status") != "up":
                    return False
            for s in self.sentinels:
                with redis.Redis(port=s.port, socket_timeout=1, decode_responses=True) as r:
                    state = r.sentinel_master(MASTER)
                    if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                        return False
        except (redis.RedisError, OSError):
            return False
        return True

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers says."""
        for s in self.sentinels:
            with (
                contextlib.suppress(redis.RedisError, OSError),
                redis.Redis(port=s.port, socket_timeout=1) as r,
            ):
                _, port = r.sentinel_get_master_addr_by_name(MASTER)
                return int(port)
        raise RuntimeError("no sentinel answers")

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            node.stop()


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    with tempfile.TemporaryDirectory(prefix="blast-sentinel-") as workdir:
        topo = SentinelSet(Path(workdir))
        try:
            topo.start()
            yield topo
        finally:
            topo.stop()


@pytest.fixture
def pki() -> Iterator[Pki]:
    with tempfile.TemporaryDirectory(prefix="blast-pki-") as workdir:
        yield make_pki(Path(workdir))
