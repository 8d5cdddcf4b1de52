"""Real `blast-daemon` processes on PostgreSQL: SIGKILL mid-blast then restart, and two daemons sharing a blast."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemon.rate_limit import GRANT_HORIZON_S, RateLimiter
from daemon.results import FLUSH_MIN_GAP_S
from shared.config import Settings
from shared.fake_graph.server import FakeGraph
from shared.services import live
from shared.status import BlastStatus
from tests.conftest import USE_POSTGRES
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for
from tests.daemon.test_sending import max_in_window

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        not USE_POSTGRES, reason="several daemon processes need PostgreSQL (SQLite is one host)"
    ),
]

ROOT = Path(__file__).resolve().parents[2]


class Daemons:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, settings: Settings, name: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(
            BLAST_ENV_FILE=os.devnull,
            DATABASE_URL=settings.DATABASE_URL,
            REDIS_URL=settings.redis_url,
            BLAST_REDIS_PREFIX=settings.BLAST_REDIS_PREFIX,
            WHATSAPP_PROVIDER="cloud",
            WHATSAPP_API_URL=settings.WHATSAPP_API_URL,
            WHATSAPP_ACCESS_TOKEN=settings.WHATSAPP_ACCESS_TOKEN.get_secret_value()
            if settings.WHATSAPP_ACCESS_TOKEN
            else "",
            WHATSAPP_PHONE_NUMBER_ID=settings.WHATSAPP_PHONE_NUMBER_ID or "",
            BLAST_RATE_LIMIT=str(settings.BLAST_RATE_LIMIT),
            BLAST_HTTP_PORT="0",
            TEMPLATE_SYNC_INTERVAL="3600",
            BLAST_RATE_AUDIT="true" if settings.BLAST_RATE_AUDIT else "false",
        )
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path)
    yield d
    d.stop_all()


async def _alive(settings: Settings, n: int) -> bool:
    return len([d for d in await live.daemons(settings) if d.alive]) >= n


async def test_sigkill_mid_blast_then_restart_loses_and_duplicates_nothing(
    db: Any, cloud_settings: Any, fake: FakeGraph, daemons: Daemons, redis_client: Any
) -> None:
    rate, latency_s = 200.0, 0.05
    settings = cloud_settings(BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=latency_s * 1000, jitter_ms=20.0)
    first = daemons.start(settings, "first")
    await wait_for(lambda: _alive(settings, 1), timeout_s=30, what="first daemon up")
    blast_id = await make_blast(settings, 2000)

    async def half_sent() -> bool:
        return len(fake.received) >= 600

    await wait_for(half_sent, timeout_s=30, what="600 requests")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    daemons.start(settings, "second")
    await wait_for(
        lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=90, what="completed after restart"
    )
    blast = await blast_of(blast_id)
    per_phone = Counter(m.to for m in fake.accepted())
    assert max(per_phone.values()) == 1, "a recipient was sent twice"
    assert blast.n_sent + blast.n_unknown == 2000 and blast.n_failed == 0
    # UNKNOWN: only requests in flight at the kill: rate x (latency + jitter), plus the slots granted ahead (at
    # most one grant) and results not yet written (one flush gap), plus a few of noise on this loaded machine.
    assert blast.n_unknown <= rate * (latency_s + 0.02 + GRANT_HORIZON_S + FLUSH_MIN_GAP_S) + 5, (
        blast.n_unknown
    )
    assert len(per_phone) >= blast.n_sent
    await assert_counters_exact(blast_id)


async def test_sigkill_while_a_set_based_flush_waits_leaves_exact_counts_and_no_duplicates(
    db: Any, cloud_settings: Any, fake: FakeGraph, daemons: Daemons, redis_client: Any
) -> None:
    """The daemon is killed while its result write (one statement: the rows and the blast's counters) and its
    SENDING mark wait on the blast row, which the test holds locked. The statement either commits whole or not at
    all: after a restart nobody is sent twice, the counters equal the buckets, and UNKNOWN stays within what was
    granted or in flight when the lock was taken."""
    rate, latency_s = 300.0, 0.02
    settings = cloud_settings(BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=latency_s * 1000, jitter_ms=5.0)
    first = daemons.start(settings, "first")
    await wait_for(lambda: _alive(settings, 1), timeout_s=30, what="first daemon up")
    blast_id = await make_blast(settings, 1500)
    await wait_for(lambda: _count_ge(fake, 300), timeout_s=30, what="300 requests")
    holder = await asyncpg.connect(settings.DATABASE_URL)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT id FROM blast WHERE id = $1 FOR UPDATE", blast_id)
        sent_at_lock = len(fake.received)
        await asyncio.sleep(0.5)  # answers arrive; their write (and the next mark) wait on the row
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        stalled = len(fake.received) - sent_at_lock
        await lock.rollback()  # the write in flight at the kill now commits, or not, as one
    finally:
        await holder.close()
    daemons.start(settings, "second")
    await wait_for(
        lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=90, what="completed after restart"
    )
    blast = await blast_of(blast_id)
    per_phone = Counter(m.to for m in fake.accepted())
    assert max(per_phone.values()) == 1, "a recipient was sent twice"
    assert blast.n_sent + blast.n_unknown == 1500 and blast.n_failed == 0
    # No mark could commit while the row was held, so what left meanwhile was granted before: one grant at most.
    assert stalled <= rate * (GRANT_HORIZON_S + latency_s) + 5, stalled
    assert blast.n_unknown <= rate * (GRANT_HORIZON_S + latency_s + 0.01 + FLUSH_MIN_GAP_S) + 5, (
        blast.n_unknown
    )
    await assert_counters_exact(blast_id)


async def _count_ge(fake: FakeGraph, n: int) -> bool:
    return len(fake.received) >= n


async def test_two_daemons_share_a_blast_within_the_rate(
    db: Any, cloud_settings: Any, fake: FakeGraph, daemons: Daemons, redis_client: Any
) -> None:
    rate = 150.0  # a chunk is ~10 s at the rate: 3000 recipients make 2 chunks
    settings = cloud_settings(BLAST_RATE_LIMIT=rate, BLAST_RATE_AUDIT=True)
    fake.configure(latency_ms=20.0, jitter_ms=10.0)
    daemons.start(settings, "a")
    daemons.start(settings, "b")
    await wait_for(lambda: _alive(settings, 2), timeout_s=30, what="two daemons up")
    blast_id = await make_blast(settings, 3000)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=60, what="completed")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == 3000 and set(per_phone.values()) == {1}
    # The limiter's grants (both daemons, Redis clock): never above the limit in any 1 s window.
    limiter = RateLimiter.for_sender(settings, redis_client, settings.WHATSAPP_PHONE_NUMBER_ID)
    grants = await limiter.audited_grants()
    assert len(grants) >= 3000 and max_in_window(grants) <= rate
    # Arrivals at the fake add the jitter of two daemons, the fake and the test sharing 2 loaded cores: an event
    # loop that wakes late fires its due slots together. A loose bound (the grants above are the exact one).
    assert max_in_window([m.received_at for m in fake.received]) <= rate * 1.5
    chunk_daemons = {j.daemon for j in await live.recent_jobs(settings, limit=500) if j.kind == "chunk"}
    assert len(chunk_daemons) == 2, "both daemons should have sent chunks"
    await assert_counters_exact(blast_id)
