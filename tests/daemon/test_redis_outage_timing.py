"""Redis stopped and started empty mid-blast: a short, visible hiccup, not an outage.

Sending pauses while Redis is gone and resumes within 2 s of Redis answering; a blast whose time came during the
outage starts within 1 s of it; nobody is sent twice or lost; the limiter does not burst to catch up. (The issue
says 30 s of outage; the daemon's reconnection backoff is capped at 1 s, so a shorter outage exercises the same
path and keeps the test quick.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from shared.clock import utcnow
from shared.fake_graph.server import FakeGraph
from shared.status import BlastStatus
from tests.conftest import PrivateRedis
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for

pytestmark = pytest.mark.slow

OUTAGE_S = 6.0


def _max_in_window(times: list[float], window_s: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_redis_stopped_then_started_empty_resumes_at_once_without_burst_or_duplicates(
    db: Any,
    private_redis: PrivateRedis,
    cloud_settings: Any,
    fake: FakeGraph,
    start_daemon: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    n, rate, latency_s = 1600, 200.0, 0.05
    settings = cloud_settings(REDIS_URL=private_redis.url, BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=latency_s * 1000, jitter_ms=10.0)
    await start_daemon(settings)
    running = await make_blast(settings, n)

    async def some_sent() -> bool:
        return len(fake.received) >= 300

    await wait_for(some_sent, timeout_s=30, what="300 requests")
    await asyncio.to_thread(private_redis.stop)
    stopped_at = time.time()
    # Due in the middle of the outage (the scheduler claims it; its chunks wait for Redis).
    due = await make_blast(settings, 100, send_at=utcnow() + timedelta(seconds=OUTAGE_S / 2), first=10_000)
    await asyncio.sleep(1.0)
    before = len(fake.received)
    await asyncio.sleep(OUTAGE_S - 1.0)
    assert len(fake.received) == before, "a request left while Redis was down"
    await asyncio.to_thread(private_redis.start)  # same port, empty
    back_at = time.time()

    await wait_for(lambda: status_is(running, BlastStatus.COMPLETED), timeout_s=60, what="running blast done")
    await wait_for(lambda: status_is(due, BlastStatus.COMPLETED), timeout_s=30, what="due blast done")
    received = list(fake.received)
    after = [m for m in received if m.received_at >= back_at]
    first_running = min(m.received_at for m in after if m.to is not None and int(m.to[-7:]) < 10_000)
    first_due = min(m.received_at for m in received if m.to is not None and int(m.to[-7:]) >= 10_000)
    assert all(m.received_at < stopped_at + 1.0 for m in received if m.received_at < back_at)
    assert first_running - back_at < 2.0, (
        f"sending resumed {first_running - back_at:.2f} s after Redis answered"
    )
    assert first_due - back_at < 1.0, (
        f"the due blast started {first_due - back_at:.2f} s after Redis answered"
    )

    per_phone = Counter(m.to for m in received)
    assert max(per_phone.values()) == 1, "a recipient was sent twice"
    blast = await blast_of(running)
    assert blast.n_unknown <= rate * (latency_s + 0.05) + 5, blast.n_unknown
    assert blast.n_sent + blast.n_unknown == n
    assert (await blast_of(due)).n_sent == 100
    # No catch-up burst: the shared limiter grants at most its rate in any 1 s window, before and after.
    assert _max_in_window([m.received_at for m in after]) <= rate * 1.1 + 5
    for b in (running, due):
        await assert_counters_exact(b)
