"""Work survives Redis being flushed or restarted, and the leases of a dead daemon are recovered."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from shared.clock import utcnow
from shared.fake_graph.server import FakeGraph
from shared.models import Recipient
from shared.status import BlastStatus, RecipientStatus
from tests.conftest import PrivateRedis
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for


async def test_flushall_before_send_time_still_fires(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, private_redis: PrivateRedis
) -> None:
    settings = cloud_settings(REDIS_URL=private_redis.url)
    await start_daemon(settings)
    send_at = utcnow() + timedelta(seconds=2)
    blast_id = await make_blast(settings, 100, send_at=send_at)
    client = aioredis.Redis.from_url(private_redis.url)
    await client.flushall()
    await client.aclose()
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="completed")
    first = min(m.received_at for m in fake.received)
    assert first - send_at.timestamp() < 1.0
    assert len(Counter(m.to for m in fake.received)) == 100 == len(fake.received)


async def test_redis_restart_before_send_time_still_fires(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, private_redis: PrivateRedis
) -> None:
    settings = cloud_settings(REDIS_URL=private_redis.url)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 100, send_at=utcnow() + timedelta(seconds=4))
    await asyncio.to_thread(private_redis.restart)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=40, what="completed")
    assert len(Counter(m.to for m in fake.received)) == 100 == len(fake.received)
    await assert_counters_exact(blast_id)


async def test_dead_daemon_leases_are_recovered(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    import socket

    from shared.services import transitions

    settings = cloud_settings()
    blast_id = await make_blast(settings, 50, status=BlastStatus.PROCESSING, notify=False)
    # A daemon of this host whose process is gone held 5 requests in flight and a page of 10 more.
    dead = f"{socket.gethostname()}:999999:dead00/c1.1"
    ids = [r.id for r in await Recipient.filter(blast_id=blast_id).order_by("id").limit(15)]
    until = utcnow() + timedelta(minutes=5)
    await Recipient.filter(id__in=ids).update(lease_owner=dead, lease_expires_at=until)
    await transitions.move_recipients(
        blast_id, RecipientStatus.SENDING, sources=[RecipientStatus.PENDING], ids=ids[:5]
    )
    await start_daemon(settings)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="completed")
    blast = await blast_of(blast_id)
    assert blast.n_unknown == 5 and blast.n_sent == 45
    assert len(fake.received) == 45
    await assert_counters_exact(blast_id)
