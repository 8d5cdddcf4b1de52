"""The missed-schedule cutoff per due group of a running local-time blast: a group found more than
BLAST_MISSED_CUTOFF after its time (every daemon was down across it) pauses the blast with a reason naming the
group, once, through the state machine and the audit log; a group seen on time, a resumed blast's groups, and a
blast paused by the operator across a group's time are never "missed"."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.clock import utcnow
from shared.config import Settings
from shared.models import AuditLog, Blast, Recipient, Template
from shared.services import blast_actions, blast_lifecycle, claims
from shared.status import BlastStatus
from tests.factories import make_blast, make_template

HOUR = 3600.0
ZONES = ("Asia/Jayapura", "Asia/Makassar", "Asia/Jakarta")  # WIT, WITA, WIB


async def local_blast(groups: list[datetime], per_group: int, *, accepted: datetime | None) -> int:
    """A PROCESSING local-time blast with one zone per due group (`per_group` recipients each), as the import
    and the start leave it, with groups up to `accepted` accepted."""
    tmpl = await Template.filter(name="order_update").first() or await make_template()
    blast = await make_blast(tmpl, n=per_group * len(groups), status=BlastStatus.PROCESSING)
    ids = await Recipient.filter(blast_id=blast.id).order_by("id").values_list("id", flat=True)
    for i, rid in enumerate(ids):
        g = i // per_group
        await Recipient.filter(id=rid).update(due_at=groups[g], zone=ZONES[g])
    await Blast.filter(id=blast.id).update(
        local_time="2030-01-01T09:00",
        due_times=[g.isoformat() for g in groups],
        send_at=groups[0],
        started_at=groups[0],
        accepted_due_at=accepted,
    )
    return blast.id


async def test_a_group_found_later_than_the_cutoff_pauses_the_blast_naming_it(db: Settings) -> None:
    now = utcnow().replace(second=30, microsecond=0)
    groups = [now - timedelta(hours=3), now - timedelta(hours=2, minutes=10), now + timedelta(hours=1)]
    blast_id = await local_blast(groups, 3, accepted=groups[0])
    check = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="daemon@a", now=now)
    assert (check.paused, check.sendable) == (True, False)
    blast = await Blast.get(id=blast_id)
    wita = groups[1].astimezone(ZoneInfo("Asia/Makassar")).strftime("%H:%M")
    assert blast.status == BlastStatus.PAUSED
    assert blast.last_error == (
        f"the {wita} WITA group (3 recipients) missed its send time by 2h 10m "
        "(more than BLAST_MISSED_CUTOFF, 1h 00m): resume to send it now, or cancel it"
    )
    audit = await AuditLog.filter(entity="blast", entity_id=str(blast_id)).order_by("-id").first()
    assert audit is not None and (audit.action, audit.actor) == ("pause", "daemon@a")
    assert audit.detail["reason"] == blast.last_error and audit.detail["recipients"] == 3
    # a second daemon finds it paused: no second pause, no audit row
    again = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="daemon@b", now=now)
    assert (again.paused, again.sendable) == (False, False)
    assert await AuditLog.filter(entity_id=str(blast_id), action="pause").count() == 1
    # nothing of the missed group may be claimed by a chunk that loaded its plan before the pause
    plan = await claims.load_plan(blast_id)
    assert plan is not None and plan.accepted_due_at == groups[0]


async def test_two_daemons_at_once_pause_the_blast_exactly_once(db: Settings) -> None:
    now = utcnow()
    groups = [now - timedelta(hours=5), now - timedelta(hours=3), now - timedelta(hours=2)]
    blast_id = await local_blast(groups, 2, accepted=groups[0])
    checks = await asyncio.gather(
        *(
            blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor=f"daemon@{i}", now=now)
            for i in range(4)
        )
    )
    assert sum(c.paused for c in checks) == 1 and not any(c.sendable for c in checks)
    assert await AuditLog.filter(entity_id=str(blast_id), action="pause").count() == 1
    reason = (await Blast.get(id=blast_id)).last_error or ""
    assert reason.startswith("the ") and "group (2 recipients) missed its send time by 3h 00m" in reason
    assert ", and 1 later group (2 recipients) too (more than BLAST_MISSED_CUTOFF" in reason
    assert reason.endswith("resume to send them now, or cancel it")


async def test_after_the_resume_the_late_groups_are_sent_and_never_paused_again(db: Settings) -> None:
    now = utcnow()
    groups = [now - timedelta(hours=3), now - timedelta(hours=2), now + timedelta(seconds=30)]
    blast_id = await local_blast(groups, 2, accepted=groups[0])
    assert (await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d")).paused
    before = utcnow()
    assert await blast_actions.resume_blast(blast_id, settings=db, actor="ops") == BlastStatus.PROCESSING
    blast = await Blast.get(id=blast_id)
    assert (
        blast.accepted_due_at is not None and blast.accepted_due_at >= before
    )  # persisted: what it accepted
    later = utcnow() + timedelta(minutes=10)  # hours later still: the same lateness does not pause again
    check = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d", now=later)
    assert (check.paused, check.sendable) == (False, True)
    plan = await claims.load_plan(blast_id)
    assert plan is not None
    rows = await claims.claim_due_page(blast_id, "d:1:x/a", 10, [groups[1]])
    assert len(rows) == 2
    assert (await Blast.get(id=blast_id)).status == BlastStatus.PROCESSING


async def test_a_group_seen_on_time_is_accepted_and_never_missed_later(db: Settings) -> None:
    now = utcnow()
    groups = [now - timedelta(hours=1), now - timedelta(seconds=2), now + timedelta(hours=2)]
    blast_id = await local_blast(groups, 2, accepted=groups[0])
    check = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d", now=now)
    assert (check.paused, check.sendable, check.accepted_due_at) == (False, True, groups[1])
    # the daemons then die mid-group and come back hours later: the group started on time, it goes on
    later = now + timedelta(hours=1, minutes=30)
    check = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d", now=later)
    assert (check.paused, check.sendable, check.accepted_due_at) == (False, True, groups[1])
    assert (await Blast.get(id=blast_id)).status == BlastStatus.PROCESSING


async def test_a_pause_by_the_operator_across_a_group_time_is_not_a_missed_group(db: Settings) -> None:
    now = utcnow()
    groups = [now - timedelta(hours=4), now - timedelta(hours=2)]
    blast_id = await local_blast(groups, 2, accepted=groups[0])
    # paused by the operator before the second group's time (as a test: the pause happened hours ago) ...
    await blast_actions.pause_blast(blast_id, settings=db, actor="ops")
    assert (
        await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d")
    ).sendable is False
    # ... and resumed now: the group waited for the operator, it is not missed
    await blast_actions.resume_blast(blast_id, settings=db, actor="ops")
    check = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d")
    assert (check.paused, check.sendable) == (False, True)


async def test_held_or_finished_groups_and_expired_blasts_are_not_missed(db: Settings) -> None:
    now = utcnow()
    groups = [now - timedelta(hours=5), now - timedelta(hours=3)]
    # the late group has nothing PENDING left (sent, cancelled ...): accepted, nothing to pause for
    blast_id = await local_blast(groups, 2, accepted=groups[0])
    await Recipient.filter(blast_id=blast_id, due_at=groups[1]).update(status="CANCELLED")
    check = await blast_lifecycle.check_due_groups(blast_id, missed_cutoff_s=HOUR, actor="d", now=now)
    assert (check.paused, check.accepted_due_at) == (False, groups[1])
    # a blast whose valid-until passed expires its rest instead
    other = await local_blast(groups, 2, accepted=groups[0])
    await Blast.filter(id=other).update(valid_until=now - timedelta(minutes=1))
    check = await blast_lifecycle.check_due_groups(other, missed_cutoff_s=HOUR, actor="d", now=now)
    assert check.paused is False


async def test_starting_a_blast_accepts_the_groups_already_due(db: Settings) -> None:
    now = utcnow()
    groups = [now - timedelta(minutes=50), now - timedelta(minutes=20), now + timedelta(hours=1)]
    blast_id = await local_blast(groups, 1, accepted=None)
    await Blast.filter(id=blast_id).update(status=BlastStatus.SCHEDULED, started_at=None)
    out = await blast_lifecycle.start_due_blast(blast_id, missed_cutoff_s=HOUR, actor="d")
    assert out.kind == "started"
    assert (await Blast.get(id=blast_id)).accepted_due_at == groups[1]
