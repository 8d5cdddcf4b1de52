"""A database outage mid-blast (PostgreSQL: the test's own database stops taking connections for a moment) does
not end the daemon: sending stops, each loop logs the outage once, and the blast completes afterwards."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from shared.fake_graph.server import FakeGraph
from shared.status import BlastStatus
from tests.conftest import USE_POSTGRES, _pg_exec, _pg_url_for
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        not USE_POSTGRES,
        reason="needs PostgreSQL: a database of its own that refuses connections for a moment",
    ),
]

DB_NAME = f"blast_outage_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this module's own (never the run's shared one): the test cuts it off."""
    asyncio.run(_pg_exec(f'CREATE DATABASE "{DB_NAME}"'))
    try:
        yield _pg_url_for(DB_NAME)
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))


async def _cut_off() -> None:
    await _pg_exec(f'ALTER DATABASE "{DB_NAME}" ALLOW_CONNECTIONS false')
    await _pg_exec(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DB_NAME}' "
        "AND pid <> pg_backend_pid()"
    )


async def _reconnect() -> None:
    await _pg_exec(f'ALTER DATABASE "{DB_NAME}" ALLOW_CONNECTIONS true')


def _tolerant(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """The test's own queries share the daemon's pool: the first ones after the outage may hit dead sessions."""

    async def run() -> bool:
        try:
            return await check()
        except Exception:
            return False

    return run


async def test_database_outage_mid_blast_then_the_blast_completes(
    db: Any,
    cloud_settings: Any,
    fake: FakeGraph,
    start_daemon: Any,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, rate = 1500, 200.0
    settings = cloud_settings(BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=30.0, jitter_ms=10.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, n)

    async def some_sent() -> bool:
        return len(fake.received) >= 300

    await wait_for(some_sent, timeout_s=30, what="300 requests")
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="daemon")
    await _cut_off()
    try:
        # In-flight requests finish (give them a second); then nothing leaves while no recipient can be
        # marked SENDING.
        settle_by = time.monotonic() + 1.0
        while time.monotonic() < settle_by:
            await asyncio.sleep(0.05)
        seen = len(fake.received)
        quiet_until = time.monotonic() + 2.0
        while time.monotonic() < quiet_until:
            assert len(fake.received) == seen, "a request left while the database was unreachable"
            await asyncio.sleep(0.05)
    finally:
        await _reconnect()
    await wait_for(
        _tolerant(lambda: status_is(blast_id, BlastStatus.COMPLETED)), timeout_s=60, what="completed"
    )
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == n and set(per_phone.values()) == {1}
    blast = await blast_of(blast_id)
    # Results of the requests in flight at the cut were kept and written once the database was back.
    assert blast.n_sent == n and blast.n_unknown == 0, blast.counts()
    await assert_counters_exact(blast_id)
    # Each loop said so once, not once per retry.
    for what in ("scheduler", "recovery", "webhook applier"):
        warnings = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and r.getMessage().startswith(f"{what}:")
        ]
        assert len(warnings) <= 1, [r.getMessage() for r in warnings]
