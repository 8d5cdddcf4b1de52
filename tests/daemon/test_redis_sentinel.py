"""Redis behind Sentinel: the clients, the work queue and a running daemon follow the master through a failover.

A master, a replica and three redis-sentinel processes of the test's own (down-after 1 s, quorum 2); the master
is killed with SIGKILL, as a crashed host, and the sentinels promote the replica.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from redis.exceptions import RedisError

from daemon.broker import build_broker, stream_name
from daemon.check import check_redis
from daemon.dispatch import SEND_CHUNK
from shared.fake_graph.server import FakeGraph
from shared.redis_conn import describe_server, make_client
from shared.status import BlastStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for
from tests.redis_servers import MASTER, SentinelSet, sentinel_set

pytestmark = pytest.mark.slow
__all__ = ["sentinel_set"]  # the fixture, imported for the tests below

#: A failover takes down-after (1 s) + the election + the promotion: a few seconds; this bounds it loosely.
FAILOVER_S = 30.0


def _sentinel_settings(make: Any, topo: SentinelSet, **overrides: Any) -> Any:
    # The URL's host is not used with Sentinel (only its database number): a closed port makes sure of it.
    base: dict[str, Any] = {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_SENTINELS": topo.sentinels_setting}
    base.update(overrides)
    return make(**base)


async def _failover(topo: SentinelSet) -> float:
    """Kill the master; returns the monotonic time at which the sentinels name the new one."""
    old = topo.master.port
    await asyncio.to_thread(topo.master.kill)
    deadline = time.monotonic() + FAILOVER_S
    while time.monotonic() < deadline:
        port = await asyncio.to_thread(topo.master_port)
        if port != old:
            assert port == topo.replica.port
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no failover within {FAILOVER_S} s")


async def test_a_client_and_the_work_queue_follow_the_master_through_a_failover(
    make_settings: Any, sentinel_set: SentinelSet
) -> None:
    settings = _sentinel_settings(make_settings, sentinel_set)
    client = make_client(settings, socket_connect_timeout=1, socket_timeout=2)
    broker = build_broker(settings)
    try:
        await broker.startup()
        kicker = broker.find_task(SEND_CHUNK)
        assert kicker is not None
        await kicker.kiq(1, "before")
        server = await describe_server(settings, client)
        assert server.address == f"127.0.0.1:{sentinel_set.master.port}" and server.role == "master"
        assert server.text().endswith(f"(master, TLS no, via Sentinel '{MASTER}')")

        promoted_at = await _failover(sentinel_set)
        # The same client and the same broker reach the new master by themselves.
        deadline = time.monotonic() + 10
        while True:
            try:
                await client.set(settings.key("probe"), "1")
                break
            except RedisError:
                assert time.monotonic() < deadline, "the client did not follow the failover"
                await asyncio.sleep(0.1)
        assert time.monotonic() - promoted_at < 3.0
        await kicker.kiq(1, "after")
        assert await client.xlen(stream_name(settings)) >= 1
        server = await describe_server(settings, client)
        assert server.address == f"127.0.0.1:{sentinel_set.replica.port}" and server.role == "master"
        findings = await check_redis(settings)
        assert (
            findings[0].level == "ok" and f"{sentinel_set.replica.port} (master, TLS no" in findings[0].text
        )
    finally:
        await broker.shutdown()
        await client.aclose()


async def test_kill_the_master_mid_blast_failover_then_the_blast_completes_without_duplicates(
    db: Any, sentinel_set: SentinelSet, cloud_settings: Any, fake: FakeGraph, start_daemon: Any
) -> None:
    # sentinel_set before start_daemon: the daemon stops before the servers do.
    n, rate, latency_s = 1500, 200.0, 0.05
    settings = _sentinel_settings(cloud_settings, sentinel_set, BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=latency_s * 1000, jitter_ms=10.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, n)

    async def some_sent() -> bool:
        return len(fake.received) >= 300

    await wait_for(some_sent, timeout_s=30, what="300 requests")
    promoted_at = await _failover(sentinel_set)
    sent_at_promotion = len(fake.received)

    async def resumed() -> bool:
        return len(fake.received) > sent_at_promotion

    await wait_for(resumed, timeout_s=15, what="sending after the failover")
    resumed_after_s = time.monotonic() - promoted_at
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=90, what="blast completed")

    per_phone = Counter(m.to for m in fake.received)
    assert max(per_phone.values()) == 1, "a recipient was sent twice"
    blast = await blast_of(blast_id)
    # UNKNOWN only for requests in flight when the master died; everything else sent once.
    assert blast.n_unknown <= rate * (latency_s + 0.05) + 5, blast.n_unknown
    assert blast.n_sent + blast.n_unknown == n and len(per_phone) >= blast.n_sent
    await assert_counters_exact(blast_id)
    assert resumed_after_s < 2.0, f"sending resumed {resumed_after_s:.1f} s after the new master answered"


async def test_the_work_queue_reclaims_an_unacknowledged_message_over_sentinel(
    make_settings: Any, sentinel_set: SentinelSet
) -> None:
    """What taskiq-redis's Sentinel broker lacks: a message taken by a consumer that died is handed to another
    (XAUTOCLAIM after the idle timeout), here over the Sentinel-managed pool."""
    settings = _sentinel_settings(make_settings, sentinel_set)
    dead, alive = build_broker(settings, consumer_name="dead"), build_broker(settings, consumer_name="alive")
    alive.idle_timeout = 200  # ms, instead of RECLAIM_MS
    await dead.startup()
    await alive.startup()
    taken = dead.listen()
    took = alive.listen()
    try:
        kicker = dead.find_task(SEND_CHUNK)
        assert kicker is not None
        await kicker.kiq(1, "lost")
        lost = await asyncio.wait_for(anext(taken), 5)  # taken, never acknowledged: its consumer "dies"
        await asyncio.sleep(0.3)
        await kicker.kiq(1, "next")  # reclaim runs after a read that returned new messages
        got = [await asyncio.wait_for(anext(took), 5) for _ in range(2)]
        assert lost.data in [m.data for m in got]
        for message in got:
            await message.ack()  # type: ignore[misc]  # taskiq types ack as returning None | Awaitable
    finally:
        await taken.aclose()
        await took.aclose()
        await dead.shutdown()
        await alive.shutdown()
