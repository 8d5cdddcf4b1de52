"""A running local-time blast whose next zone's time passed while every daemon was down: the daemon that comes
back later than BLAST_MISSED_CUTOFF pauses the blast naming the group and sends none of it; after the operator's
resume the group goes out at once, the later group at its time, each recipient once (in-process daemon, fake)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from shared.clock import utcnow
from shared.fake_graph.server import FakeGraph
from shared.models import Blast, Recipient
from shared.services import blast_actions
from shared.status import BlastStatus, RecipientStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_local_blast, status_is, wait_for


async def test_a_group_missed_while_the_daemons_were_down_pauses_then_resume_sends_it(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=200.0, BLAST_MISSED_CUTOFF=3600.0)
    now = utcnow()
    groups = [now - timedelta(hours=3), now - timedelta(hours=2), now + timedelta(seconds=3)]
    zones = [("+09:00", groups[0], 3), ("+08:00", groups[1], 3), ("+07:00", groups[2], 3)]
    blast_id, _ = await make_local_blast(settings, zones, status=BlastStatus.PROCESSING)
    ids = await Recipient.filter(blast_id=blast_id).order_by("id").values_list("id", flat=True)
    # the first zone went out on time, three hours ago; then every daemon stopped
    await Recipient.filter(id__in=ids[:3]).update(status=RecipientStatus.SENT, wamid="wamid.old")
    await Blast.filter(id=blast_id).update(
        send_at=groups[0],
        started_at=groups[0],
        accepted_due_at=groups[0],
        n_pending=6,
        n_sent=3,
    )
    await start_daemon(settings)
    await wait_for(lambda: status_is(blast_id, BlastStatus.PAUSED), timeout_s=10, what="blast paused")
    reason = (await blast_of(blast_id)).last_error or ""
    assert (
        "group (3 recipients) missed its send time by 2h 00m (more than BLAST_MISSED_CUTOFF, 1h 00m)"
        in reason
    )
    await asyncio.sleep(4)  # past the third zone's time too: the paused blast sends nothing
    assert fake.received == []

    await blast_actions.resume_blast(blast_id, settings=settings, actor="ops")
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="blast COMPLETED")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == 6 and set(per_phone.values()) == {1}
    assert (await blast_of(blast_id)).status == BlastStatus.COMPLETED  # never paused again for that lateness
    await assert_counters_exact(blast_id)
