"""Errors that are recipient-level by Meta's table but systemic when they repeat (100, 131008 …) pause a blast
after BLAST_SYSTEMIC_ERROR_STREAK recipients in a row, instead of failing every recipient one by one."""

from __future__ import annotations

from typing import Any

from shared.fake_graph.server import FakeGraph
from shared.status import BlastStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, phone, status_is, wait_for


async def test_code_100_for_everyone_pauses_after_the_streak(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    rate = 200.0
    settings = cloud_settings(BLAST_RATE_LIMIT=rate, BLAST_SYSTEMIC_ERROR_STREAK=20)
    fake.configure(latency_ms=30.0, jitter_ms=10.0)
    fake.add_fault(mode="error", code=100)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 1000)
    await wait_for(lambda: status_is(blast_id, BlastStatus.PAUSED), timeout_s=20, what="paused")

    async def quiet() -> bool:
        return (await blast_of(blast_id)).n_sending == 0

    await wait_for(quiet, timeout_s=20, what="no SENDING left")
    blast = await blast_of(blast_id)
    assert blast.error_code == 100 and blast.last_error is not None
    assert blast.last_error.startswith("20 recipients in a row failed with invalid parameter"), (
        blast.last_error
    )
    assert "(code 100)" in blast.last_error and "resume" in blast.last_error
    # The streak plus the requests already on their way (rate x (latency + jitter) + one grant), no more.
    assert 20 <= blast.n_failed == len(fake.received) <= 20 + rate * 0.1 + 10, blast.n_failed
    assert blast.n_pending == 1000 - blast.n_failed and blast.n_sent == 0
    await assert_counters_exact(blast_id)


async def test_a_success_resets_the_streak(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=50.0, BLAST_SYSTEMIC_ERROR_STREAK=8)
    # Runs of 4 invalid numbers, each followed by one that goes through: never 8 in a row.
    for i in range(100):
        if i % 5 != 4:
            fake.add_fault(mode="error", code=131009, to=phone(i))
    await start_daemon(settings)
    blast_id = await make_blast(settings, 100)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="completed")
    blast = await blast_of(blast_id)
    assert blast.n_failed == 80 and blast.n_sent == 20
    await assert_counters_exact(blast_id)
