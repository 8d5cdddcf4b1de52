"""Provides what the operations tests share: env files laid out as in production, the daemon run as systemd runs
it (a subprocess reading BLAST_ENV_FILE, nothing else from the environment), and a bound NOTIFY_SOCKET."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

#: Settings operators need (the console reads this file too): group-readable.
OPERATOR_KEYS = ("DATABASE_URL", "REDIS_URL", "BLAST_REDIS_PREFIX", "BLAST_TIMEZONE", "WHATSAPP_PROVIDER")


def daemon_command() -> list[str]:
    """`blast-daemon` of the virtualenv running the tests (the unit's ExecStart= runs the same script)."""
    script = Path(sys.executable).parent / "blast-daemon"
    if script.exists():
        return [str(script)]
    found = shutil.which("blast-daemon")
    return [found] if found else [sys.executable, "-m", "daemon"]


def write_env_files(directory: Path, operator: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    """blast.env (0640) and secrets.env (0600) in `directory`; returns the BLAST_ENV_FILE value for both."""
    blast_env = directory / "blast.env"
    secrets_env = directory / "secrets.env"
    blast_env.write_text("".join(f"{k}={v}\n" for k, v in operator.items()), encoding="utf-8")
    secrets_env.write_text("".join(f"{k}={v}\n" for k, v in secrets.items()), encoding="utf-8")
    blast_env.chmod(0o640)
    secrets_env.chmod(0o600)
    return f"{blast_env}{os.pathsep}{secrets_env}"


def clean_env(env_file: str, **extra: str) -> dict[str, str]:
    """An environment like systemd's: PATH, LANG, BLAST_ENV_FILE and `extra`, nothing of the test's own."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "BLAST_ENV_FILE": env_file}
    env.update(extra)
    return env


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        # A short directory: AF_UNIX paths are limited to 107 bytes, and pytest's tmp_path can be long.
        self._dir = tempfile.mkdtemp(prefix="blast-sd-")
        self.path = os.path.join(self._dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def _receive(self, timeout_s: float) -> bool:
        self.sock.settimeout(max(0.01, timeout_s))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return False
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return True

    def wait_for(
        self, key: str, value: str = "1", *, timeout_s: float, proc: subprocess.Popen[bytes]
    ) -> bool:
        """Read datagrams until one carries key=value (True), the deadline passes or the process ends."""
        deadline = time.monotonic() + timeout_s
        if any(m.get(key) == value for m in self.messages):
            return True
        while time.monotonic() < deadline:
            if self._receive(min(0.5, deadline - time.monotonic())):
                if self.messages[-1].get(key) == value:
                    return True
            elif proc.poll() is not None:
                return any(m.get(key) == value for m in self.messages)
        return False

    def drain(self) -> None:
        while self._receive(0.01):
            pass

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def running(cmd: list[str], env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a daemon subprocess, logging to `log_path`; killed at the end if it is still running."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
