"""A full Redis: under noeviction writes fail; the daemon says why and what to do, keeps the database consistent
and carries on when Redis takes writes again. Under an evicting policy it warns at startup."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from daemon.check import check_redis
from shared.fake_graph.server import FakeGraph
from shared.status import BlastStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for
from tests.redis_servers import Node, data_node

pytestmark = pytest.mark.slow

FIX = "Redis is full (maxmemory reached, noeviction): raise maxmemory or free memory"


@pytest.fixture
def own_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Node]:
    policy = getattr(request, "param", "noeviction")
    node = data_node(tmp_path, "redis", "--maxmemory-policy", policy)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def _config_set(node: Node, name: str, value: str) -> None:
    with redis.Redis(port=node.port) as r:
        r.config_set(name, value)


async def test_a_full_redis_pauses_sending_with_the_fix_and_the_blast_completes_when_it_has_room(
    db: Any,
    own_redis: Node,
    cloud_settings: Any,
    fake: FakeGraph,
    start_daemon: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    n = 1200
    settings = cloud_settings(REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0", BLAST_RATE_LIMIT=200.0)
    fake.configure(latency_ms=20.0, jitter_ms=5.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, n)

    async def some_sent() -> bool:
        return len(fake.received) >= 200

    await wait_for(some_sent, timeout_s=30, what="200 requests")
    await asyncio.to_thread(_config_set, own_redis, "maxmemory", "1")  # full: every write refused (OOM)

    async def told() -> bool:
        return FIX in caplog.text

    await wait_for(told, timeout_s=20, what="the full-Redis line")
    await asyncio.sleep(1.0)
    sent_while_full = len(fake.received)
    await asyncio.sleep(1.5)
    assert len(fake.received) == sent_while_full, "requests left while Redis refused writes"
    blast = await blast_of(blast_id)
    assert blast.n_sending == 0 and BlastStatus(blast.status) == BlastStatus.PROCESSING
    await assert_counters_exact(blast_id)

    await asyncio.to_thread(_config_set, own_redis, "maxmemory", "0")  # room again
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=60, what="completed")
    per_phone = Counter(m.to for m in fake.received)
    assert max(per_phone.values()) == 1, "a recipient was sent twice"
    blast = await blast_of(blast_id)
    assert blast.n_sent + blast.n_unknown == n
    await assert_counters_exact(blast_id)
    # Each loop says it once per streak, with the cause and the fix; no traceback.
    fix_lines = [r for r in caplog.records if FIX in r.getMessage()]
    assert fix_lines and all("command not allowed when used memory" in r.getMessage() for r in fix_lines)
    per_loop = Counter(r.getMessage().split(":", 1)[0] for r in fix_lines)
    assert max(per_loop.values()) == 1, per_loop
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("own_redis", ["allkeys-lru"], indirect=True)
async def test_an_evicting_policy_is_warned_about_at_startup_and_by_check(
    db: Any, own_redis: Node, cloud_settings: Any, start_daemon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = cloud_settings(REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0")
    await start_daemon(settings)

    async def warned() -> bool:
        return "maxmemory-policy is allkeys-lru: when Redis is full it may evict keys" in caplog.text

    await wait_for(warned, timeout_s=20, what="the eviction warning")
    findings = await check_redis(settings)
    assert [f.level for f in findings if "maxmemory-policy" in f.text] == ["warn"], findings
