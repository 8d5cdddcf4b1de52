"""Redis back, work back: after Redis restarts empty, the next due blast starts on time (in-process daemon).

The daemon's connections to the old server are dead after a restart. A blast due a few seconds later must not
pay for them: its first chunk is queued at once (the broker retries the XADD on a fresh connection) and a chunk
whose queueing failed is not left booked (a booking that was never kicked would hold its place for its TTL).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from taskiq import BrokerMessage
from taskiq_redis import RedisStreamBroker

from daemon.broker import build_broker, stream_name
from daemon.dispatch import SEND_CHUNK
from daemon.recovery import TICK_S
from shared.clock import utcnow
from shared.fake_graph.server import FakeGraph
from shared.status import BlastStatus
from tests.conftest import PrivateRedis
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for

pytestmark = pytest.mark.slow

#: How long after the restart the blast is due.
DUE_AFTER_S = 3.0
#: How late its first request may reach the Graph API: loose for a loaded 2-core machine, far below the 30 s a
#: stale booking cost.
LATE_S = 1.0


async def test_blast_due_after_a_redis_restart_starts_on_time(
    db: Any,
    cloud_settings: Any,
    fake: FakeGraph,
    start_daemon: Any,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stopped and started empty on the same port: a blast due 3 s later reaches Meta within 1 s of its
    time (it waited ~30 s for a booking whose XADD had failed on a connection to the old server)."""
    caplog.set_level(logging.INFO)  # a failure shows the daemon's INFO log
    settings = cloud_settings(REDIS_URL=private_redis.url, BLAST_RATE_LIMIT=200.0)
    await start_daemon(settings)
    # A blast before the restart leaves the broker's pool holding connections to the old server.
    warm = await make_blast(settings, 20)
    await wait_for(lambda: status_is(warm, BlastStatus.COMPLETED), timeout_s=30, what="first blast completed")
    assert len(fake.received) == 20

    await asyncio.to_thread(private_redis.restart)  # same port, empty
    send_at = utcnow() + timedelta(seconds=DUE_AFTER_S)
    blast_id = await make_blast(settings, 200, send_at=send_at, first=1000)

    async def first_request() -> bool:
        return len(fake.received) > 20

    await wait_for(first_request, timeout_s=DUE_AFTER_S + 40, what="the first request of the blast")
    first = min(m.received_at for m in list(fake.received)[20:])
    late_s = first - send_at.timestamp()
    assert late_s < LATE_S, f"first request {late_s:.1f} s after send_at"

    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="blast completed")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == 220 and set(per_phone.values()) == {1}, "a recipient was sent twice"
    blast = await blast_of(blast_id)
    assert blast.n_sent == 200
    await assert_counters_exact(blast_id)


async def test_a_chunk_whose_queueing_failed_is_not_left_booked(
    db: Any,
    cloud_settings: Any,
    fake: FakeGraph,
    start_daemon: Any,
    redis_client: Any,  # deletes the test's keys from the shared Redis afterwards
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first XADD fails (whatever the broker's own retries): the supervisor queues the chunk at its next
    tick, instead of finding it booked and waiting for the booking to expire."""
    caplog.set_level(logging.INFO)
    kick = RedisStreamBroker.kick
    failures = [RedisConnectionError("injected: connection reset")]

    async def failing_kick(self: RedisStreamBroker, message: BrokerMessage) -> None:
        if failures:
            raise failures.pop()
        await kick(self, message)

    monkeypatch.setattr(RedisStreamBroker, "kick", failing_kick)
    settings = cloud_settings(BLAST_RATE_LIMIT=200.0)
    await start_daemon(settings)
    send_at = utcnow() + timedelta(seconds=1)
    blast_id = await make_blast(settings, 100, send_at=send_at)

    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=60, what="blast completed")
    assert not failures, "the injected failure was not hit"
    late_s = min(m.received_at for m in fake.received) - send_at.timestamp()
    assert late_s < TICK_S + 2 * LATE_S, f"first request {late_s:.1f} s after send_at"
    assert len(Counter(m.to for m in fake.received)) == 100 == len(fake.received)
    await assert_counters_exact(blast_id)
    # The log says why the chunk was not queued, not only that taskiq could not send it.
    assert "SendTaskError: Cannot send task to the queue (caused by ConnectionError: injected" in caplog.text


async def test_the_broker_queues_on_a_new_connection_after_a_restart(
    make_settings: Any, private_redis: PrivateRedis
) -> None:
    """The pool's connection to the old server fails the first XADD; the broker retries it on a new one."""
    settings = make_settings(REDIS_URL=private_redis.url)
    broker = build_broker(settings)
    await broker.startup()
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        kicker = broker.find_task(SEND_CHUNK)
        assert kicker is not None
        await kicker.kiq(1, "before")
        await asyncio.to_thread(private_redis.restart)  # same port, empty
        await kicker.kiq(1, "after")  # raised SendTaskError (ConnectionError: Connection closed by server.)
        assert await client.xlen(stream_name(settings)) == 1  # the new server holds only the second message
    finally:
        await client.aclose()
        await broker.shutdown()
