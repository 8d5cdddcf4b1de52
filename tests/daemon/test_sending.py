"""The daemon sends scheduled blasts on time, once per recipient, within the rate limit (in-process daemon)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from daemon.rate_limit import RateLimiter
from shared.clock import utcnow
from shared.fake_graph.server import FakeGraph
from shared.status import BlastStatus
from tests.daemon.conftest import (
    assert_counters_exact,
    blast_of,
    make_blast,
    status_is,
    wait_for,
)


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """Most events in any half-open window [t, t + window_s); 1 µs of float noise at epoch scale is forgiven."""
    window_s -= 1e-6
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_scheduled_blast_fires_on_time_once_each(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=100.0, BLAST_RATE_AUDIT=True)
    await start_daemon(settings)
    send_at = utcnow() + timedelta(seconds=2)
    blast_id = await make_blast(settings, 300, send_at=send_at)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="blast COMPLETED")
    received = fake.received
    first = min(m.received_at for m in received)
    assert first - send_at.timestamp() < 1.0, "first message more than 1 s late"
    per_phone = Counter(m.to for m in received)
    assert len(per_phone) == 300 and set(per_phone.values()) == {1}
    # The limiter's grants (Redis clock) never exceed the limit in any 1 s window: the exact guarantee.
    limiter = RateLimiter.for_sender(settings, redis_client, settings.WHATSAPP_PHONE_NUMBER_ID)
    grants = await limiter.audited_grants()
    assert len(grants) >= 300 and max_in_window(grants) <= 100
    # Arrivals add the event loop's wake-up jitter on this shared machine: a loose bound.
    assert max_in_window([m.received_at for m in received]) <= 100 * 1.2
    blast = await blast_of(blast_id)
    assert blast.n_sent == 300 and blast.started_at is not None and blast.finished_at is not None
    await assert_counters_exact(blast_id)


async def test_missed_schedule_fires_at_startup_and_past_cutoff_pauses(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_MISSED_CUTOFF=3600.0)
    # Both were due while no daemon ran.
    recent = await make_blast(settings, 20, send_at=utcnow() - timedelta(minutes=5), notify=False)
    stale = await make_blast(settings, 20, send_at=utcnow() - timedelta(hours=3), first=100, notify=False)
    await start_daemon(settings)
    await wait_for(lambda: status_is(recent, BlastStatus.COMPLETED), timeout_s=20, what="missed blast sent")
    await wait_for(lambda: status_is(stale, BlastStatus.PAUSED), timeout_s=20, what="stale blast paused")
    paused = await blast_of(stale)
    assert paused.last_error is not None and paused.last_error.startswith("missed its send time by 3h 00m")
    assert paused.n_pending == 20
    assert len(fake.received) == 20


async def test_valid_until_passed_cancels_the_rest_as_expired(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings()
    blast_id = await make_blast(
        settings, 30, send_at=utcnow() - timedelta(minutes=10), valid_until=utcnow() - timedelta(minutes=1)
    )
    await start_daemon(settings)
    await wait_for(
        lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=20, what="expired blast done"
    )
    blast = await blast_of(blast_id)
    assert blast.n_cancelled == 30 and blast.n_sent == 0
    assert blast.last_error is not None and "expired" in blast.last_error
    assert fake.received == []
    await assert_counters_exact(blast_id)


async def test_suppressed_numbers_are_skipped_never_sent(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    from shared.models import Suppression
    from tests.daemon.conftest import phone

    settings = cloud_settings()
    await Suppression.create(phone=phone(3), reason="opted out", source="meta")
    await start_daemon(settings)
    blast_id = await make_blast(settings, 10)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=20, what="blast done")
    blast = await blast_of(blast_id)
    assert blast.n_skipped == 1 and blast.n_sent == 9
    assert phone(3)[1:] not in {m.to for m in fake.received}


async def test_a_131050_answer_is_an_opt_out_that_can_be_lifted_and_is_audited(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    from shared.models import AuditLog, Suppression
    from shared.parsing.phones import mask_phone
    from shared.services import suppression
    from tests.daemon.conftest import phone

    settings = cloud_settings()
    fake.add_fault(mode="error", code=131050, to=phone(3))
    await start_daemon(settings)
    blast_id = await make_blast(settings, 10)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=20, what="blast done")
    assert (await blast_of(blast_id)).n_failed == 1
    # the sender records it as the owner's opt-out, like the webhook does, with an audit entry
    row = await Suppression.get(phone=phone(3))
    assert row.source == suppression.SOURCE_OPT_OUT_131050
    assert await AuditLog.filter(action="suppress", entity_id=mask_phone(phone(3))).exists()
    # so Meta's "resume" preference (and an operator) can lift it
    assert await suppression.remove_opt_out(phone(3), actor="operator")
    assert phone(3) not in await suppression.is_suppressed([phone(3)])
