"""Benchmarks of blast-daemon (not in CI): send rate, scheduling lateness, memory.

Runs the fake Graph API and `blast-daemon` as subprocesses against a fresh PostgreSQL database (BENCH_PG) and the
local Redis. `bench/send_bench.py` reuses the Harness below for the send benchmark measured at the fake (rate,
sliding-window peak, first-send lateness, CPU per 1,000 messages, SQLite or PostgreSQL, several daemons).

    .venv/bin/python bench/daemon_bench.py throughput --n 20000 --rate 1000 --latency-ms 50 --jitter-ms 20
    .venv/bin/python bench/daemon_bench.py throughput --n 20000 --rate 1000000          # "unlimited"
    .venv/bin/python bench/daemon_bench.py lateness --blasts 200
    .venv/bin/python bench/daemon_bench.py rss --n 100000 --rate 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.clock import utcnow  # noqa: E402
from shared.config import load_settings  # noqa: E402
from shared.db import close_db, open_db  # noqa: E402
from shared.events import EVENTS_CHANNEL, close_redis_clients, publish, redis_client  # noqa: E402
from shared.models import Blast, Recipient, Template  # noqa: E402
from shared.services import live  # noqa: E402
from shared.status import BlastStatus, TemplateStatus  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = "redis://127.0.0.1:6379/0"
TEMPLATE = {"type": "BODY", "text": "Hello {{1}}"}
DbKind = Literal["sqlite", "postgres"]
FINAL = (BlastStatus.COMPLETED, BlastStatus.FAILED, BlastStatus.CANCELLED)
T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, with SIGTERM handled as Ctrl-C is (the main task is cancelled, so every cleanup runs)."""

    async def wrapper() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main

    try:
        return asyncio.run(wrapper())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: everything the bench started was stopped and removed", file=sys.stderr)
        raise SystemExit(130) from None
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_url(dbname: str) -> str:
    """BENCH_PG with another database name."""
    return urlsplit(PG_ADMIN)._replace(path=f"/{dbname}").geturl()


async def make_db() -> str:
    name = f"blast_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop_db(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def start_fake(
    port: int, latency: float, jitter: float, workdir: Path, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """The fake Graph API with the bench template, no throughput or pair-rate limit, the given latency."""
    tpl = {"name": "bench", "language": "en_US", "status": "APPROVED", "components": [TEMPLATE]}
    path = workdir / "templates.json"
    path.write_text(json.dumps([tpl]))
    args = [
        sys.executable,
        "-m",
        "shared.fake_graph",
        "--port",
        str(port),
        "--mps",
        "0",
        "--no-pair-rate",
        "--latency-ms",
        str(latency),
        "--jitter-ms",
        str(jitter),
        "--templates",
        str(path),
        "--quiet",
        *extra,
    ]
    # own process group: a Ctrl-C reaches only the bench, which stops its children in order
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0
    )


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal a child and wait for it; SIGKILL when it does not exit within the timeout."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


def daemon_env(db_url: str, prefix: str, fake_port: int, rate: float) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BLAST_ENV_FILE=os.devnull,
        DATABASE_URL=db_url,
        REDIS_URL=REDIS_URL,
        BLAST_REDIS_PREFIX=prefix,
        WHATSAPP_PROVIDER="cloud",
        WHATSAPP_API_URL=f"http://127.0.0.1:{fake_port}/v24.0",
        WHATSAPP_ACCESS_TOKEN="fake-access-token",  # noqa: S106 (the fake's own token)
        WHATSAPP_PHONE_NUMBER_ID="106540352242922",
        BLAST_RATE_LIMIT=str(rate),
        BLAST_HTTP_PORT="0",
        TEMPLATE_SYNC_INTERVAL="86400",
    )
    return env


async def create_blast(n: int, *, send_at_s: float = 0.0) -> int:
    tmpl, _ = await Template.get_or_create(
        name="bench",
        language="en_US",
        defaults={
            "status": TemplateStatus.APPROVED,
            "components": [TEMPLATE],
            "parameter_names": ["1"],
            "parameter_count": 1,
        },
    )
    blast = await Blast.create(
        name=f"bench {n}",
        template=tmpl,
        status=BlastStatus.DRAFT,
        total=n,
        n_pending=n,
        send_at=utcnow() + timedelta(seconds=send_at_s),
    )
    for start in range(0, n, 10_000):
        rows = [
            Recipient(blast_id=blast.id, phone=f"+1555{i:07d}", params={"1": "x"}, row=i + 1)
            for i in range(start, min(n, start + 10_000))
        ]
        await Recipient.bulk_create(rows, batch_size=5000)
    return blast.id


class BenchError(RuntimeError):
    """A run that cannot be measured (a daemon died, the blast paused, the deadline passed)."""


class Harness:
    """The fake Graph API and `daemons` daemon processes on a fresh database and Redis key prefix.

    db "postgres" creates a database on BENCH_PG (dropped on exit); "sqlite" a file in a temporary directory
    (DATABASE_URL=sqlite:///path, shared by the bench and every daemon). `env` is added to every daemon's
    environment. Leaving the block, also on an error or Ctrl-C (the children run in their own process group, so
    the bench stops them in order): daemons SIGTERMed and waited (SIGKILL after 40 s), the prefix's Redis keys
    deleted, the fake terminated, the database closed and dropped, the temporary directory (logs included)
    removed. Cleanups pushed on `stack` run first.
    """

    def __init__(
        self,
        rate: float,
        latency: float,
        jitter: float,
        *,
        db: DbKind = "postgres",
        daemons: int = 1,
        env: Mapping[str, str] | None = None,
        fake_args: Sequence[str] = (),
        seed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.seed = seed
        self.rate, self.latency, self.jitter = rate, latency, jitter
        self.fake_args = list(fake_args)
        self.db, self.n_daemons, self.extra_env = db, daemons, dict(env or {})
        self.prefix = f"bench-{uuid.uuid4().hex[:6]}"
        self.stack = contextlib.AsyncExitStack()
        self.daemons: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.dbname: str | None = None

    @property
    def daemon(self) -> subprocess.Popen[bytes]:
        return self.daemons[0]

    async def __aenter__(self) -> Harness:
        try:
            await self._start()
        except BaseException:
            await self.stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def _start(self) -> None:
        self.tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{self.prefix}-")))
        if self.db == "postgres":
            self.dbname = await make_db()
            self.stack.push_async_callback(drop_db, self.dbname)
            self.db_url = pg_url(self.dbname)
        else:
            self.db_url = f"sqlite://{self.tmp / 'blast.db'}"
        self.settings = load_settings(
            DATABASE_URL=self.db_url,
            REDIS_URL=REDIS_URL,
            BLAST_REDIS_PREFIX=self.prefix,
            WHATSAPP_PROVIDER="sandbox",
        )
        await open_db(self.settings)
        self.stack.push_async_callback(close_db)
        self.stack.push_async_callback(close_redis_clients)
        self.stack.push_async_callback(self._forget_redis_keys)
        self.fake_port = free_port()
        self.fake = start_fake(self.fake_port, self.latency, self.jitter, self.tmp, self.fake_args)
        self.stack.callback(stop_process, self.fake)
        env = daemon_env(self.db_url, self.prefix, self.fake_port, self.rate)
        env.update(self.extra_env)
        if self.seed is not None:  # rows the daemons must find at their start (e.g. sender numbers)
            await self.seed()
        self.stack.push_async_callback(self._stop_daemons)
        for i in range(self.n_daemons):
            self.logs.append(self.tmp / f"daemon-{i + 1}.log")
            with self.logs[-1].open("wb") as log:
                self.daemons.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "daemon", "run"],
                        cwd=ROOT,
                        stdout=log,
                        stderr=log,
                        env=env,
                        process_group=0,
                    )
                )
        await self._wait_ready()

    async def _wait_ready(self, timeout: float = 60.0) -> None:
        """Every daemon heartbeats and listens to the events channel (so the "scheduled" wake-up reaches it)."""
        deadline = time.monotonic() + timeout
        channel = self.settings.key(EVENTS_CHANNEL)
        while True:
            self.check_daemons()
            alive = {d.pid for d in await live.daemons(self.settings) if d.alive}
            subs = dict(await redis_client(self.settings).pubsub_numsub(channel))
            listening = int(subs.get(channel.encode(), subs.get(channel, 0)))
            if alive >= {p.pid for p in self.daemons} and listening >= self.n_daemons:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"daemons not ready after {timeout:.0f} s\n{self.daemon_logs()}")
            await asyncio.sleep(0.1)

    def check_daemons(self) -> None:
        for i, proc in enumerate(self.daemons):
            if proc.poll() is not None:
                raise BenchError(f"daemon {i + 1} exited with {proc.returncode}\n{self.daemon_logs()}")

    def daemon_logs(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- daemon {i + 1} log (last lines):\n{tail(p, lines)}" for i, p in enumerate(self.logs)
        )

    async def _stop_daemons(self, timeout: float = 40.0) -> None:
        for proc in self.daemons:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.daemons) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in self.daemons:
            if proc.poll() is None:
                print(f"daemon pid {proc.pid} ignored SIGTERM for {timeout:.0f} s: killed", file=sys.stderr)
                stop_process(proc, signal.SIGKILL)

    async def _forget_redis_keys(self) -> None:
        r = redis_client(self.settings)
        keys = [k async for k in r.scan_iter(match=f"{self.prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await r.delete(*keys[i : i + 1000])

    async def start_now(self, blast_id: int) -> datetime:
        """Schedule the blast for now and wake the daemons; returns the send time written."""
        send_at = utcnow()
        await Blast.filter(id=blast_id).update(status=BlastStatus.SCHEDULED, send_at=send_at)
        await publish(self.settings, "scheduled", blast_id=blast_id)
        return send_at

    async def wait_finished(
        self,
        blast_id: int,
        timeout: float,
        *,
        poll_s: float = 0.05,
        on_poll: Callable[[], None] | None = None,
    ) -> Blast:
        """The blast once COMPLETED, FAILED or CANCELLED; BenchError (after printing what was seen) when it
        pauses, a daemon dies or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            b = await Blast.get(id=blast_id)
            if on_poll is not None:
                on_poll()
            status = BlastStatus(b.status)
            if status in FINAL:
                return b
            dead = [i + 1 for i, p in enumerate(self.daemons) if p.poll() is not None]
            problem = None
            if status == BlastStatus.PAUSED:
                problem = f"blast {blast_id} PAUSED: {b.last_error}"
            elif dead:
                problem = f"daemon {', '.join(map(str, dead))} exited"
            elif time.monotonic() > deadline:
                problem = f"blast {blast_id} not finished after {timeout:.0f} s"
            if problem is not None:
                seen = await self.describe(b)
                print(f"{problem}; {seen}\n{self.daemon_logs()}", file=sys.stderr)
                raise BenchError(f"{problem}; {seen}")
            await asyncio.sleep(poll_s)

    async def describe(self, b: Blast) -> str:
        """What the bench can see of a blast: status, buckets, the fake's count, the daemons' exit codes."""
        try:
            arrived: object = len(await self.fake_messages())
        except (aiohttp.ClientError, OSError) as exc:
            arrived = f"? ({exc})"
        rcs = ", ".join(f"{p.pid}: {'running' if p.poll() is None else p.returncode}" for p in self.daemons)
        return (
            f"status {BlastStatus(b.status).value}, pending {b.n_pending}, sending {b.n_sending}, sent {b.n_sent},"
            f" failed {b.n_failed}, unknown {b.n_unknown}, last error {b.last_error!r}; arrived at the fake"
            f" {arrived}; daemons {rcs}"
        )

    async def fake_messages(self) -> list[dict[str, Any]]:
        """Every send request the fake received (GET /_fake/messages)."""
        url = f"http://127.0.0.1:{self.fake_port}/_fake/messages"
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            resp.raise_for_status()
            body = await resp.json()
        data: list[dict[str, Any]] = body["data"]
        return data

    async def wait_done(self, blast_id: int, sample_rss: list[float] | None = None) -> tuple[float, float]:
        """(first sent at, finished at) from the database."""
        proc = psutil.Process(self.daemon.pid)

        def rss() -> None:
            if sample_rss is not None:
                sample_rss.append(proc.memory_info().rss / 2**20)

        await self.wait_finished(blast_id, 3600.0, poll_s=0.2, on_poll=rss)
        first = await Recipient.filter(blast_id=blast_id).order_by("sent_at").first()
        last = await Recipient.filter(blast_id=blast_id).order_by("-sent_at").first()
        assert first and last and first.sent_at and last.sent_at
        return first.sent_at.timestamp(), last.sent_at.timestamp()


async def throughput(args: argparse.Namespace) -> None:
    async with Harness(args.rate, args.latency_ms, args.jitter_ms) as h:
        blast_id = await create_blast(args.n)
        await h.start_now(blast_id)
        first, last = await h.wait_done(blast_id)
        b = await Blast.get(id=blast_id)
        rate = (args.n - 1) / (last - first)
        limit = "unlimited" if args.rate >= 100_000 else f"{args.rate:.0f}/s"
        print(
            f"throughput: {args.n} recipients, limit {limit}, latency {args.latency_ms}±{args.jitter_ms} ms: "
            f"{rate:.1f} msg/s ({rate / args.rate:.1%} of the limit); sent {b.n_sent}, failed {b.n_failed}"
        )


async def lateness(args: argparse.Namespace) -> None:
    async with Harness(1000.0, 5.0, 2.0) as h:
        ids = []
        for _ in range(args.blasts):
            bid = await create_blast(1)
            ids.append(bid)
        lates = []
        for bid in ids:
            send_at = utcnow() + timedelta(seconds=0.3)
            await Blast.filter(id=bid).update(status=BlastStatus.SCHEDULED, send_at=send_at)
            await publish(h.settings, "scheduled", blast_id=bid)
            await h.wait_finished(bid, 60.0, poll_s=0.01)
            r = await Recipient.get(blast_id=bid)
            assert r.sent_at is not None
            lates.append((r.sent_at - send_at).total_seconds())
        lates.sort()
        claim = sorted(await live.lateness(h.settings))

        def p(xs: list[float], q: float) -> float:
            return xs[min(len(xs) - 1, int(q * len(xs)))]

        print(
            f"lateness over {len(lates)} blasts, send time -> first message accepted (sent_at): "
            f"p50 {p(lates, 0.5) * 1000:.1f} ms, p99 {p(lates, 0.99) * 1000:.1f} ms, max {lates[-1] * 1000:.1f} ms; "
            f"scheduler claim lateness p50 {p(claim, 0.5) * 1000:.1f} ms, p99 {p(claim, 0.99) * 1000:.1f} ms"
        )


async def rss(args: argparse.Namespace) -> None:
    async with Harness(args.rate, args.latency_ms, args.jitter_ms) as h:
        blast_id = await create_blast(args.n)
        samples: list[float] = []
        await h.start_now(blast_id)
        first, last = await h.wait_done(blast_id, samples)
        print(
            f"rss: {args.n} recipients: daemon RSS start {samples[0]:.0f} MB, median {statistics.median(samples):.0f}"
            f" MB, max {max(samples):.0f} MB; {(args.n - 1) / (last - first):.0f} msg/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["throughput", "lateness", "rss"])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument("--blasts", type=int, default=200)
    args = parser.parse_args()
    run_async({"throughput": throughput, "lateness": lateness, "rss": rss}[args.mode](args))


if __name__ == "__main__":
    main()
