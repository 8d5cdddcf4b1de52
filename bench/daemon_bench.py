"""Benchmarks of blast-daemon (not in CI): send rate, scheduling lateness, memory.

Runs the fake Graph API and one `blast-daemon` as subprocesses against PostgreSQL and the local Redis.

    .venv/bin/python bench/daemon_bench.py throughput --n 20000 --rate 1000 --latency-ms 50 --jitter-ms 20
    .venv/bin/python bench/daemon_bench.py throughput --n 20000 --rate 1000000          # "unlimited"
    .venv/bin/python bench/daemon_bench.py lateness --blasts 200
    .venv/bin/python bench/daemon_bench.py rss --n 100000 --rate 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.config import load_settings  # noqa: E402
from shared.db import close_db, open_db  # noqa: E402
from shared.models import Blast, Recipient, Template  # noqa: E402
from shared.services import live  # noqa: E402
from shared.services.transitions import utcnow  # noqa: E402
from shared.status import BlastStatus, TemplateStatus  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TEMPLATE = {"type": "BODY", "text": "Hello {{1}}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def start_fake(port: int, latency: float, jitter: float) -> subprocess.Popen[bytes]:
    import json
    import tempfile

    tpl = {"name": "bench", "language": "en_US", "status": "APPROVED", "components": [TEMPLATE]}
    path = Path(tempfile.mkdtemp()) / "templates.json"
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
    ]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def daemon_env(db_url: str, prefix: str, fake_port: int, rate: float) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BLAST_ENV_FILE=os.devnull,
        DATABASE_URL=db_url,
        REDIS_URL="redis://127.0.0.1:6379/0",
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


class Harness:
    def __init__(self, rate: float, latency: float, jitter: float) -> None:
        self.rate, self.latency, self.jitter = rate, latency, jitter
        self.prefix = f"bench-{uuid.uuid4().hex[:6]}"

    async def __aenter__(self) -> Harness:
        self.dbname = await make_db()
        self.db_url = f"postgres://postgres@127.0.0.1:5432/{self.dbname}"
        self.settings = load_settings(
            DATABASE_URL=self.db_url,
            REDIS_URL="redis://127.0.0.1:6379/0",
            BLAST_REDIS_PREFIX=self.prefix,
            WHATSAPP_PROVIDER="sandbox",
        )
        await open_db(self.settings)
        self.fake_port = free_port()
        self.fake = start_fake(self.fake_port, self.latency, self.jitter)
        log = open(f"/tmp/{self.prefix}.log", "wb")  # noqa: S108, SIM115 (bench log, kept open for the daemon)
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            env=daemon_env(self.db_url, self.prefix, self.fake_port, self.rate),
        )
        while not [d for d in await live.daemons(self.settings) if d.alive]:
            await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(40)
        self.fake.terminate()
        self.fake.wait(10)
        await close_db()
        await drop_db(self.dbname)

    async def start_now(self, blast_id: int) -> None:
        from shared.notify import publish

        await Blast.filter(id=blast_id).update(status=BlastStatus.SCHEDULED, send_at=utcnow())
        await publish(self.settings, "scheduled", blast_id=blast_id)

    async def wait_done(self, blast_id: int, sample_rss: list[float] | None = None) -> tuple[float, float]:
        """(first sent at, finished at) from the database."""
        proc = psutil.Process(self.daemon.pid)
        while True:
            b = await Blast.get(id=blast_id)
            if sample_rss is not None:
                sample_rss.append(proc.memory_info().rss / 2**20)
            if BlastStatus(b.status) in (BlastStatus.COMPLETED, BlastStatus.FAILED):
                break
            await asyncio.sleep(0.2)
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
        from shared.notify import publish

        lates = []
        for bid in ids:
            send_at = utcnow() + timedelta(seconds=0.3)
            await Blast.filter(id=bid).update(status=BlastStatus.SCHEDULED, send_at=send_at)
            await publish(h.settings, "scheduled", blast_id=bid)
            while BlastStatus((await Blast.get(id=bid)).status) != BlastStatus.COMPLETED:
                await asyncio.sleep(0.01)
            r = await Recipient.get(blast_id=bid)
            assert r.sent_at is not None
            lates.append((r.sent_at - send_at).total_seconds())
        lates.sort()
        claim = sorted(await live.lateness(h.settings))
        p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
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
    asyncio.run({"throughput": throughput, "lateness": lateness, "rss": rss}[args.mode](args))


if __name__ == "__main__":
    main()
