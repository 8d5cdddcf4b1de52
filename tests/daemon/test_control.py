"""Operators' actions reach a running blast: cancel, pause and resume, emergency stop, retry; errors pause it."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from shared.fake_graph.server import FakeGraph
from shared.services import blast_actions as blast_ops
from shared.status import BlastStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for


async def sent_count(fake: FakeGraph) -> int:
    return len(fake.received)


async def test_cancel_mid_blast_stops_requests_within_a_second(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=50.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 400)

    async def some_sent() -> bool:
        return len(fake.received) >= 40

    await wait_for(some_sent, timeout_s=20, what="40 requests")
    await blast_ops.cancel_blast(blast_id, settings=settings, actor="test")
    cancelled_at = time.time()

    async def settled() -> bool:
        b = await blast_of(b_id := blast_id)
        return b_id > 0 and b.n_sending == 0 and b.n_pending == 0

    await wait_for(settled, timeout_s=20, what="no PENDING or SENDING left")
    late = [m for m in fake.received if m.received_at > cancelled_at + 1.0]
    assert late == [], f"{len(late)} requests left more than 1 s after the cancel"
    blast = await blast_of(blast_id)
    assert BlastStatus(blast.status) == BlastStatus.CANCELLED
    assert blast.n_sent == len(fake.received) and blast.n_cancelled == 400 - blast.n_sent
    await assert_counters_exact(blast_id)


async def test_pause_then_resume_sends_everyone_once(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=100.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 300)

    async def some_sent() -> bool:
        return len(fake.received) >= 50

    await wait_for(some_sent, timeout_s=20, what="50 requests")
    await blast_ops.pause_all(settings=settings, actor="test")
    paused_at = time.time()

    async def quiet() -> bool:
        b = await blast_of(blast_id)
        return BlastStatus(b.status) == BlastStatus.PAUSED and b.n_sending == 0

    await wait_for(quiet, timeout_s=20, what="paused and quiet")
    assert not [m for m in fake.received if m.received_at > paused_at + 1.0]
    assert len(fake.received) < 300
    await blast_ops.resume_all(settings=settings, actor="test")
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="completed")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == 300 and set(per_phone.values()) == {1}
    await assert_counters_exact(blast_id)


async def test_expired_token_pauses_with_fewer_than_10_further_requests(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=200.0)
    fake.configure(latency_ms=30.0, jitter_ms=10.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 1000)

    async def some_sent() -> bool:
        return len(fake.received) >= 100

    await wait_for(some_sent, timeout_s=20, what="100 requests")
    fake.configure(access_token="a-new-token-nobody-has")
    await wait_for(lambda: status_is(blast_id, BlastStatus.PAUSED), timeout_s=20, what="paused")

    async def quiet() -> bool:
        return (await blast_of(blast_id)).n_sending == 0

    await wait_for(quiet, timeout_s=20, what="no SENDING left")
    blast = await blast_of(blast_id)
    assert blast.error_code == 190 and blast.last_error is not None
    assert "WHATSAPP_ACCESS_TOKEN" in blast.last_error and "resume" in blast.last_error
    # The fake does not record requests it refuses for their token: they are the requests minus the recorded.
    rejected = fake.counts["messages_requests"] - len(fake.received)
    # The first 190 plus those already on their way (~rate x latency = 200/s x 40 ms) plus fewer than 10 more.
    assert 1 <= rejected < 10 + 200 * 0.05, rejected
    assert blast.n_failed == 0 and blast.n_pending + blast.n_sent == 1000
    await assert_counters_exact(blast_id)


async def test_throughput_storm_slows_down_and_sends_everyone(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=120.0)
    fake.configure(mps=40.0, mps_burst=10.0)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 300)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=60, what="completed")
    blast = await blast_of(blast_id)
    assert blast.n_sent == 300 and blast.n_failed == 0
    assert fake.counts.get("error_130429", 0) > 0
    per_phone = Counter(m.to for m in fake.accepted())
    assert len(per_phone) == 300 and set(per_phone.values()) == {1}
    await assert_counters_exact(blast_id)


async def test_failure_rate_pauses_the_blast(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(
        BLAST_RATE_LIMIT=100.0, BLAST_FAILURE_RATE_THRESHOLD=0.3, BLAST_FAILURE_RATE_WINDOW=50
    )
    fake.add_fault(mode="error", code=131026, probability=0.6)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 1000)
    await wait_for(lambda: status_is(blast_id, BlastStatus.PAUSED), timeout_s=30, what="auto-paused")
    blast = await blast_of(blast_id)
    assert blast.last_error is not None and blast.last_error.startswith("failure rate")
    assert blast.n_pending > 500


async def test_retry_requeues_failed_recipients(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    from tests.daemon.conftest import phone

    settings = cloud_settings()
    for i in (1, 2):
        fake.add_fault(mode="error", code=131026, to=phone(i), times=1)
    await start_daemon(settings)
    blast_id = await make_blast(settings, 20)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=20, what="completed")
    assert (await blast_of(blast_id)).n_failed == 2
    result = await blast_ops.retry_blast(blast_id, settings=settings, actor="test")
    assert result.requeued == 2
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=20, what="completed again")
    blast = await blast_of(blast_id)
    assert blast.n_sent == 20 and blast.n_failed == 0
