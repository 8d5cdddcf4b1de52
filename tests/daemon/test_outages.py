"""The daemon survives what production throws at it: SIGTERM mid-blast, a Redis outage, a database outage."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.fake_graph.server import FakeGraph
from shared.models import Recipient
from shared.services import blast_actions as blast_ops
from shared.services import live
from shared.status import BlastStatus, RecipientStatus
from tests.conftest import PrivateRedis
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for
from tests.daemon.test_processes import Daemons

pytestmark = pytest.mark.slow

R = RecipientStatus


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path)
    yield d
    d.stop_all()


async def _alive(settings: Any, n: int) -> bool:
    return len([d for d in await live.daemons(settings) if d.alive]) >= n


def _log_of(tmp: Path, name: str) -> str:
    return (tmp / f"{name}.log").read_text(errors="replace")


async def test_sigterm_mid_blast_finishes_in_flight_requests_then_a_new_daemon_sends_the_rest(
    db: Any, cloud_settings: Any, fake: FakeGraph, daemons: Daemons, redis_client: Any, tmp_path: Path
) -> None:
    n = 1500
    settings = cloud_settings(BLAST_RATE_LIMIT=200.0)
    fake.configure(latency_ms=100.0, jitter_ms=20.0)  # ~20 requests in flight at any moment
    first = daemons.start(settings, "first")
    await wait_for(lambda: _alive(settings, 1), timeout_s=30, what="first daemon up")
    blast_id = await make_blast(settings, n)

    async def some_sent() -> bool:
        return len(fake.received) >= 300

    await wait_for(some_sent, timeout_s=30, what="300 requests")
    first.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    code = await asyncio.to_thread(first.wait, 30)
    assert code == 0, _log_of(tmp_path, "first")[-3000:]
    assert time.monotonic() - stopped_at < 30
    assert "stopped: daemon stopping" in _log_of(tmp_path, "first")  # the chunk ended itself, not cancelled
    blast = await blast_of(blast_id)
    assert blast.n_sending == 0 and blast.n_unknown == 0, blast.counts()
    assert BlastStatus(blast.status) == BlastStatus.PROCESSING
    # Every request that reached the fake has its result written; nothing went out twice.
    per_phone = Counter(m.to for m in fake.received)
    assert max(per_phone.values()) == 1
    assert blast.n_sent == len(fake.received) < n
    # Nothing is left leased to the stopped daemon: the next one starts at once.
    assert not await Recipient.filter(blast_id=blast_id, lease_owner__isnull=False).exists()

    daemons.start(settings, "second")
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=60, what="completed")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == n and set(per_phone.values()) == {1}
    blast = await blast_of(blast_id)
    assert blast.n_sent == n
    await assert_counters_exact(blast_id)


async def test_redis_outage_mid_blast_stops_sending_then_completes_and_honours_a_cancel(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, private_redis: PrivateRedis
) -> None:
    rate, latency_s = 200.0, 0.05
    settings = cloud_settings(REDIS_URL=private_redis.url, BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=latency_s * 1000, jitter_ms=10.0)
    await start_daemon(settings)
    keep = await make_blast(settings, 1200)
    drop = await make_blast(settings, 600, first=10_000)

    async def some_sent() -> bool:
        return len(fake.received) >= 300

    await wait_for(some_sent, timeout_s=30, what="300 requests")
    await asyncio.to_thread(private_redis.stop)

    async def quiet() -> bool:
        return (await blast_of(keep)).n_sending + (await blast_of(drop)).n_sending == 0

    await wait_for(quiet, timeout_s=20, what="in-flight requests written")
    # Redis is gone (the limiter lives there): nothing more is sent.
    seen = len(fake.received)
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        assert len(fake.received) == seen, "a request left while Redis was down"
        await asyncio.sleep(0.05)
    # The operator cancels one blast meanwhile: the database takes it, the notification is lost.
    await blast_ops.cancel_blast(drop, settings=settings, actor="test")
    await asyncio.to_thread(private_redis.start)  # same port, empty
    await wait_for(lambda: status_is(keep, BlastStatus.COMPLETED), timeout_s=60, what="completed after Redis")
    blast = await blast_of(keep)
    per_phone = Counter(m.to for m in fake.received)
    assert max(per_phone.values()) == 1, "a recipient was sent twice"
    keep_phones = {m.to for m in fake.received if m.to is not None and int(m.to[-7:]) < 10_000}
    # UNKNOWN only for requests really in flight when Redis went (the chunk writes their results: none).
    assert blast.n_unknown <= rate * (latency_s + 0.05) + 5, blast.n_unknown
    assert blast.n_sent + blast.n_unknown == 1200 and len(keep_phones) >= blast.n_sent
    cancelled = await blast_of(drop)
    assert BlastStatus(cancelled.status) == BlastStatus.CANCELLED
    assert cancelled.n_pending == 0 and cancelled.n_sending == 0
    drop_sent = len([m for m in fake.received if m.to is not None and int(m.to[-7:]) >= 10_000])
    assert drop_sent == cancelled.n_sent + cancelled.n_unknown, (
        "the cancelled blast was sent after the outage"
    )
    for b in (keep, drop):
        await assert_counters_exact(b)
