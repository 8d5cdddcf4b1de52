"""Quiet hours on drafts: kept (explicit or BLAST_QUIET_HOURS) with the recipients' zones, edited while a draft,
and applied when the draft is scheduled (due times from the send time given then, the "will wait" estimate)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from shared.config import Settings
from shared.errors import InvalidTransition, ValidationFailed
from shared.models import AuditLog, Blast, Recipient
from shared.parsing.quiet import parse_quiet_hours
from shared.services import blast_actions, blast_schedule, blasts, claims
from shared.status import BlastStatus
from tests.shared.test_quiet_hours import CSV, create, evening_wita

B = BlastStatus


async def draft(db: Settings, tmp_path: Path, text: str = CSV, **kw: object) -> blasts.CreateResult:
    return await create(db, tmp_path, text=text, **({"draft": True} | kw))


async def test_a_draft_keeps_its_quiet_hours_and_scheduling_it_holds_the_night_zones(
    db: Settings, tmp_path: Path
) -> None:
    settings = db.model_copy(update={"BLAST_RATE_LIMIT": 1.0})
    result = await draft(settings, tmp_path, quiet_hours="21:00-08:00")
    blast = await Blast.get(id=result.id)
    assert blast.status == B.DRAFT and blast.quiet_hours == "21:00-08:00" and blast.due_times is None
    rows = await Recipient.filter(blast_id=result.id).order_by("row").values_list("zone", "due_at")
    assert rows == [("Asia/Makassar", None), ("Asia/Makassar", None), ("+14:00", None)]

    # 20:59:59 WITA at 1 message/s: one of the two WITA recipients goes before 21:00, the other waits; at
    # +14:00 it is 02:59:59, so that one is due at 08:00 there (held at scheduling, as create holds it): two
    # wait, the first release being +14:00's.
    send = evening_wita() - timedelta(hours=1, seconds=1)
    done = await blast_actions.reschedule_blast(result.id, settings=settings, send_at=send.isoformat())
    assert done.send_at == send.astimezone(UTC)
    assert done.quiet_note == "about 2 recipients will wait until 08:00 UTC+14:00"
    blast = await Blast.get(id=result.id)
    plus14 = (send.astimezone(UTC) + timedelta(hours=5, seconds=1)).replace(microsecond=0)
    assert blast.status == B.SCHEDULED and blast.send_at == send.astimezone(UTC)
    assert claims.parse_due_times(blast.due_times) == (send.astimezone(UTC), plus14)
    dues = cast(
        list[datetime | None],
        await Recipient.filter(blast_id=result.id).order_by("row").values_list("due_at", flat=True),
    )
    assert [d.astimezone(UTC) for d in dues if d is not None] == [send.astimezone(UTC)] * 2 + [plus14]
    assert await AuditLog.filter(entity_id=str(result.id), action="reschedule").exists()
    # Scheduled, it is a quiet-hours blast like one created scheduled: its send time is fixed.
    with pytest.raises(ValidationFailed, match="keeps quiet hours"):
        await blast_actions.reschedule_blast(result.id, settings=db, send_at="+1h")


async def test_blast_quiet_hours_applies_to_drafts_and_schedule_draft_outside_the_window_holds_nobody(
    db: Settings, tmp_path: Path
) -> None:
    settings = db.model_copy(update={"BLAST_QUIET_HOURS": "21:00-08:00"})
    result = await draft(settings, tmp_path)
    assert (await Blast.get(id=result.id)).quiet_hours == "21:00-08:00"
    noon = evening_wita().replace(hour=12)  # 12:00 WITA, 18:00 at +14:00: nobody inside the window
    done = await blast_actions.schedule_draft(result.id, settings=settings, send_at=noon.isoformat())
    assert done.quiet_note is None
    dues: list[datetime | None] = await Recipient.filter(blast_id=result.id).values_list("due_at", flat=True)  # type: ignore[assignment]  # flat: one column
    assert {d.astimezone(UTC) for d in dues if d is not None} == {noon.astimezone(UTC)}
    assert len(dues) == 3 and (await Blast.get(id=result.id)).status == B.SCHEDULED


async def test_quiet_hours_given_to_a_draft_by_an_edit_find_the_zones_at_schedule_time(
    db: Settings, tmp_path: Path
) -> None:
    # No timezone column and no quiet hours: the draft stores no zones.
    text = "phone,1,2\n+6281234567890,Ada,A1\n+6281234567891,Bob,B2\n"
    result = await draft(db, tmp_path, text=text, quiet_hours="off")
    assert await Recipient.filter(blast_id=result.id, zone__isnull=True).count() == 2
    with pytest.raises(ValidationFailed, match=r"^--quiet-hours '25:00-08:00'"):
        await blasts.edit_blast(result.id, settings=db, quiet_hours="25:00-08:00")
    await blasts.edit_blast(result.id, settings=db, quiet_hours="21:00-08:00")
    blast = await Blast.get(id=result.id)
    assert blast.quiet_hours == "21:00-08:00" and blast.timezone == db.BLAST_TIMEZONE
    jakarta = ZoneInfo("Asia/Jakarta")  # phonenumbers' zone for these numbers
    late = evening_wita().astimezone(jakarta).replace(hour=23)
    done = await blast_actions.reschedule_blast(result.id, settings=db, send_at=late.isoformat())
    # 23:00 WIB is inside the window: both are due at 08:00, and the estimate says so.
    assert done.quiet_note == "about 2 recipients will wait until 08:00 WIB"
    rows = await Recipient.filter(blast_id=result.id).values_list("zone", "due_at")
    morning = (late + timedelta(days=1)).replace(hour=8).astimezone(UTC)
    assert [(z, d.astimezone(UTC)) for z, d in rows] == [("Asia/Jakarta", morning)] * 2
    # "off" on a draft: scheduled as an ordinary blast.
    second = await draft(db, tmp_path, quiet_hours="21:00-08:00")
    await blasts.edit_blast(second.id, settings=db, quiet_hours="off")
    done = await blast_actions.reschedule_blast(second.id, settings=db, send_at=late.isoformat())
    assert done.quiet_note is None and (await Blast.get(id=second.id)).due_times is None


async def test_quiet_hours_of_a_scheduled_blast_cannot_be_edited(db: Settings, tmp_path: Path) -> None:
    result = await draft(db, tmp_path, draft=False, send_at="+1h", quiet_hours="off")
    with pytest.raises(ValidationFailed, match="on a DRAFT only") as info:
        await blasts.edit_blast(result.id, settings=db, quiet_hours="21:00-08:00")
    assert "\n" not in str(info.value)
    assert (await Blast.get(id=result.id)).quiet_hours is None


async def test_replacing_a_quiet_drafts_recipients_keeps_their_zones(db: Settings, tmp_path: Path) -> None:
    result = await draft(db, tmp_path, quiet_hours="21:00-08:00")
    other = tmp_path / "other.csv"
    other.write_text("phone,1,2,timezone\n+6281234567899,Di,D4,WIT\n+6281234567898,Ed,E5,Mars/Olympus\n")
    edited = await blasts.edit_blast(result.id, settings=db, recipients=other)
    assert edited.recipients == 1 and edited.rejected[0].reason.startswith("timezone: unknown time zone")
    zones: list[str] = await Recipient.filter(blast_id=result.id).values_list("zone", flat=True)  # type: ignore[assignment]  # flat: one column
    assert zones == ["Asia/Jayapura"]


async def test_a_valid_until_before_the_end_of_the_quiet_hours_refuses_and_leaves_a_draft(
    db: Settings, tmp_path: Path
) -> None:
    send = evening_wita()
    result = await draft(
        db, tmp_path, quiet_hours="21:00-08:00", valid_until=(send + timedelta(hours=2)).isoformat()
    )
    with pytest.raises(ValidationFailed, match="valid-until time is before the end of the quiet hours"):
        await blast_actions.reschedule_blast(result.id, settings=db, send_at=send.isoformat())
    blast = await Blast.get(id=result.id)
    assert blast.status == B.DRAFT and blast.due_times is None
    assert await Recipient.filter(blast_id=result.id, due_at__isnull=False).count() == 0


async def test_a_draft_edited_while_it_is_being_scheduled_stays_a_draft(db: Settings, tmp_path: Path) -> None:
    result = await draft(db, tmp_path, quiet_hours="21:00-08:00")
    stale = await Blast.get(id=result.id)
    await blasts.edit_blast(result.id, settings=db, name="renamed")
    quiet = parse_quiet_hours(stale.quiet_hours)
    assert quiet is not None
    with pytest.raises(InvalidTransition, match="edited or scheduled meanwhile"):
        await blast_schedule.schedule_quiet_draft(
            stale, evening_wita().astimezone(UTC), quiet, settings=db, actor="t", action="schedule"
        )
    assert (await Blast.get(id=result.id)).status == B.DRAFT


async def test_due_times_are_written_batch_by_batch(
    db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blast_schedule, "DUE_BATCH", 2)
    monkeypatch.setattr(blast_schedule, "ZONE_BATCH", 2)
    rows = "".join(f"+62812345678{i:02d},A,B,{'WITA' if i % 2 else '+14:00'}\n" for i in range(7))
    result = await draft(db, tmp_path, text="phone,1,2,timezone\n" + rows, quiet_hours="off")
    await blasts.edit_blast(result.id, settings=db, quiet_hours="21:00-08:00")
    await Recipient.filter(blast_id=result.id).update(zone=None)  # as if imported without zones
    send = evening_wita()
    await blast_actions.reschedule_blast(result.id, settings=db, send_at=send.isoformat())
    got = await Recipient.filter(blast_id=result.id).order_by("row").values_list("zone", "due_at")
    assert [z for z, _ in got] == ["+14:00" if i % 2 == 0 else "Asia/Makassar" for i in range(7)]
    assert all(d is not None for _, d in got)
