"""Quiet hours on the fake (in-process daemon): a zone inside its window while the blast runs is not sent but
held (PENDING, unleased, due again when the window ends there), the other zone is sent once each; when the
window ends the held zone is sent and the blast completes, once each."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, timedelta
from typing import Any

from shared.clock import utcnow
from shared.events import publish
from shared.fake_graph.server import FakeGraph
from shared.models import Blast, Recipient
from shared.parsing.quiet import QuietHours
from shared.services import blast_reads
from shared.status import BlastStatus, RecipientStatus
from tests.daemon.conftest import assert_counters_exact, make_blast, phone, status_is, wait_for

ZONES = ("UTC", "+12:00")


async def test_a_zone_inside_its_quiet_hours_is_held_until_they_end(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=200.0)
    await start_daemon(settings)
    now = utcnow()
    # A window around now in UTC: 12 hours away at +12:00, so that zone is outside it.
    window = QuietHours(
        (now - timedelta(hours=2)).time().replace(second=0, microsecond=0),
        (now + timedelta(hours=2)).time().replace(second=0, microsecond=0),
    )
    start = now + timedelta(seconds=1)
    blast_id = await make_blast(settings, 20, send_at=start, notify=False)
    ids = await Recipient.filter(blast_id=blast_id).order_by("id").values_list("id", flat=True)
    zone_of_phone: dict[str, str] = {}
    for i, rid in enumerate(ids):
        await Recipient.filter(id=rid).update(zone=ZONES[i % 2], due_at=start)
        zone_of_phone[phone(i).lstrip("+")] = ZONES[i % 2]
    await Blast.filter(id=blast_id).update(
        timezone="UTC", due_times=[start.isoformat()], quiet_hours=str(window)
    )
    await publish(settings, "scheduled", blast_id=blast_id)

    async def ten_sent() -> bool:
        return len(fake.received) >= 10

    await wait_for(ten_sent, timeout_s=20, what="the zone outside its quiet hours sent")
    await asyncio.sleep(2.0)  # give a wrong daemon time to send the held zone too
    assert {zone_of_phone[str(m.to)] for m in fake.received} == {"+12:00"}
    assert len(fake.received) == 10
    held = await Recipient.filter(blast_id=blast_id, zone="UTC").values_list(
        "status", "lease_owner", "next_attempt_at"
    )
    opens = window.release(utcnow(), UTC)
    assert [(s, o, t) for s, o, t in held] == [(RecipientStatus.PENDING.value, None, opens)] * 10
    assert await status_is(blast_id, BlastStatus.PROCESSING)
    hold = await blast_reads.quiet_hold(blast_id)
    assert hold is not None and (hold.held, hold.next_release, hold.zone) == (10, opens, "UTC")

    # The window ends (moved, not waited for): the held zone goes out, once each, and the blast completes.
    await Recipient.filter(blast_id=blast_id, zone="UTC").update(next_attempt_at=utcnow())
    await Blast.filter(id=blast_id).update(quiet_hours=None)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="blast COMPLETED")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == 20 and set(per_phone.values()) == {1}
    await assert_counters_exact(blast_id)
