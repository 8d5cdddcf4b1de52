"""Quiet hours: the window (crossing midnight, DST), due times moved past it at import, claims that hold a zone
inside it, retries pushed past it, and what `quiet_hold` reports."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.clock import utcnow
from shared.config import Settings, load_settings
from shared.errors import ConfigError, ValidationFailed
from shared.models import Blast, Recipient, Template
from shared.parsing.quiet import QuietHours, parse_quiet_hours
from shared.services import blast_actions, blast_reads, blasts, claims
from tests.factories import make_template

WITA = ZoneInfo("Asia/Makassar")
NIGHT = QuietHours(time(21), time(8))


def at(zone: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0, sec: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, sec, tzinfo=zone)


def test_a_window_across_midnight_holds_the_evening_and_the_early_morning() -> None:
    assert NIGHT.contains(time(21)) and NIGHT.contains(time(23, 59)) and NIGHT.contains(time(0))
    assert NIGHT.contains(time(7, 59)) and not NIGHT.contains(time(8)) and not NIGHT.contains(time(20, 59))
    # 22:30 WITA: released tomorrow at 08:00 WITA; 05:00: this morning at 08:00; 12:00: not held.
    assert NIGHT.release(at(WITA, 2026, 12, 6, 22, 30), WITA) == at(WITA, 2026, 12, 7, 8, 0)
    assert NIGHT.release(at(WITA, 2026, 12, 7, 5, 0), WITA) == at(WITA, 2026, 12, 7, 8, 0)
    noon = at(WITA, 2026, 12, 7, 12, 0)
    assert NIGHT.release(noon, WITA) == noon
    day = QuietHours(time(12), time(13, 30))  # a window within one day
    assert day.release(noon, WITA) == at(WITA, 2026, 12, 7, 13, 30)
    assert not day.contains(time(11, 59)) and not day.contains(time(13, 30))


def test_release_is_the_window_end_in_local_time_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # The night the clocks go forward (29 March 2026, 02:00 -> 03:00): 08:00 CEST is 06:00 UTC, not 07:00.
    released = NIGHT.release(at(berlin, 2026, 3, 28, 23, 0), berlin)
    assert released == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    # The night they go back (25 October 2026): 08:00 CET is 07:00 UTC.
    assert NIGHT.release(at(berlin, 2026, 10, 24, 23, 0), berlin) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["9pm-8am", "21:00", "25:00-08:00", "21:00-21:00", "21:60-08:00"])
def test_a_bad_window_is_one_line_naming_the_option_or_setting(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--quiet-hours ") as info:
        parse_quiet_hours(text, name="--quiet-hours")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="BLAST_QUIET_HOURS") as bad:
        load_settings(BLAST_QUIET_HOURS=text)
    assert "\n" not in str(bad.value)


def test_off_and_unset_mean_no_quiet_hours() -> None:
    assert (
        parse_quiet_hours("off") is None
        and parse_quiet_hours(None) is None
        and parse_quiet_hours(" ") is None
    )
    assert load_settings(BLAST_QUIET_HOURS="21:00-8:00").BLAST_QUIET_HOURS == "21:00-08:00"


CSV = "phone,1,2,timezone\n+6281234567890,Ada,A1,WITA\n+6281234567891,Bob,B2,WITA\n+6281234567892,Cy,C3,+14:00\n"


async def create(db: Settings, tmp_path: Path, *, text: str = CSV, **kw: object) -> blasts.CreateResult:
    if not await Template.exists():
        await make_template()
    path = tmp_path / "r.csv"
    path.write_text(text, encoding="utf-8")
    args: dict[str, object] = {
        "name": "promo",
        "template": "order_update",
        "language": "en_US",
        "recipients": path,
    }
    args.update(kw)
    return await blasts.create_blast(settings=db, **args)  # type: ignore[arg-type]


def evening_wita() -> datetime:
    """22:00 WITA the day after tomorrow (then 04:00 at +14:00: inside 21:00-08:00 too; 20:00 WITA is not)."""
    day = (utcnow() + timedelta(days=2)).date()
    return datetime(day.year, day.month, day.day, 22, 0, tzinfo=WITA)


async def test_recipients_inside_the_window_at_the_send_time_are_due_when_it_ends(
    db: Settings, tmp_path: Path
) -> None:
    send = evening_wita()
    result = await create(db, tmp_path, send_at=send.isoformat(), quiet_hours="21:00-08:00")
    assert result.recipients == 3
    # All three are inside the window at the send time: the estimate counts them (the first release is +14:00's).
    assert result.quiet_note == "about 3 recipients will wait until 08:00 UTC+14:00"
    rows = await Recipient.filter(blast_id=result.id).order_by("row").values_list("zone", "due_at")
    morning = (send + timedelta(days=1)).replace(hour=8)
    assert [(z, d.astimezone(UTC)) for z, d in rows] == [
        ("Asia/Makassar", morning.astimezone(UTC)),
        ("Asia/Makassar", morning.astimezone(UTC)),
        ("+14:00", (send.astimezone(UTC) + timedelta(hours=4))),  # 04:00 there: released at 08:00 there
    ]
    blast = await Blast.get(id=result.id)
    assert blast.quiet_hours == "21:00-08:00" and blast.send_at == send.astimezone(UTC)
    assert len(blast.due_times) == 2
    hold = await blast_reads.quiet_hold(result.id, now=utcnow())
    assert hold is not None
    assert hold.line() == "held by quiet hours: 3, next release 08:00 UTC+14:00"
    later = await blast_reads.quiet_hold(result.id, now=send.astimezone(UTC) + timedelta(hours=4, minutes=1))
    assert later is not None and later.line() == "held by quiet hours: 2, next release 08:00 WITA"
    assert later.to_json()["next_release"] == morning.astimezone(UTC).isoformat()
    with pytest.raises(ValidationFailed, match="keeps quiet hours"):
        await blast_actions.reschedule_blast(result.id, settings=db, send_at="+1h")


async def test_outside_the_window_nothing_is_held_and_the_setting_is_the_default(
    db: Settings, tmp_path: Path
) -> None:
    settings = db.model_copy(update={"BLAST_QUIET_HOURS": "23:00-23:30"})
    send = evening_wita() - timedelta(hours=2)  # 20:00 WITA, 02:00 at +14:00
    result = await create(settings, tmp_path, send_at=send.isoformat())
    dues: list[datetime] = await Recipient.filter(blast_id=result.id).values_list("due_at", flat=True)  # type: ignore[assignment]
    assert {d.astimezone(UTC) for d in dues} == {send.astimezone(UTC)}
    hold = await blast_reads.quiet_hold(result.id)
    assert hold is not None and hold.held == 0 and hold.line() == "held by quiet hours: 0"
    off = await create(settings, tmp_path, send_at=send.isoformat(), quiet_hours="off")
    assert await blast_reads.quiet_hold(off.id) is None
    assert (await Blast.get(id=off.id)).due_times is None  # an ordinary blast: the ordinary claim


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"quiet_hours": "9pm-8am"}, "--quiet-hours '9pm-8am': write a window"),
        ({"quiet_hours": "9pm-8am", "draft": True}, "--quiet-hours '9pm-8am': write a window"),
    ],
)
async def test_bad_quiet_hours_options_are_one_line_and_create_nothing(
    db: Settings, tmp_path: Path, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        await create(db, tmp_path, **kw)
    assert "\n" not in str(info.value)
    assert await Blast.all().count() == 0


def window_around_now_utc() -> QuietHours:
    now = utcnow()
    return QuietHours(
        (now - timedelta(hours=2)).time().replace(second=0, microsecond=0),
        (now + timedelta(hours=2)).time().replace(second=0, microsecond=0),
    )


async def test_a_claim_gives_back_and_holds_the_recipients_of_a_zone_inside_its_window(
    db: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "z.csv"
    path.write_text("phone,1,2,timezone\n+6281234567890,Ada,A1,UTC\n+6281234567891,Bob,B2,+12:00\n")
    await make_template()
    result = await blasts.create_blast(
        settings=db,
        name="q",
        template="order_update",
        language="en_US",
        recipients=path,
        quiet_hours="off",
    )
    # An ordinary blast made a due-time one by hand: both due now; UTC is inside `quiet` now, +12:00 is not.
    now = utcnow() - timedelta(seconds=1)
    await Recipient.filter(blast_id=result.id).update(due_at=now)
    await Blast.filter(id=result.id).update(due_times=[now.isoformat()])
    quiet = window_around_now_utc()
    # One row a page: the first claim meets the quiet zone (row 1), holds it and claims again.
    got = await claims.claim_due_page(result.id, "d:1:x/a", 1, (now,), quiet=quiet)
    assert [(c.phone, c.zone) for c in got] == [("+6281234567891", "+12:00")]
    held = await Recipient.get(blast_id=result.id, zone="UTC")
    assert held.lease_owner is None and held.status == "PENDING"
    assert held.next_attempt_at is not None
    assert held.next_attempt_at == quiet.release(utcnow(), UTC)
    assert await claims.claim_due_page(result.id, "d:1:x/b", 10, (now,), quiet=quiet) == []


async def test_a_retry_time_inside_the_window_is_pushed_to_its_end(db: Settings, tmp_path: Path) -> None:
    send = evening_wita()
    result = await create(db, tmp_path, send_at=send.isoformat(), quiet_hours="21:00-08:00")
    plan = await claims.load_plan(result.id)
    assert plan is not None and plan.quiet == NIGHT
    late = at(WITA, 2026, 12, 7, 20, 59, 30) + timedelta(minutes=2)  # a 2-minute backoff from 20:59:30
    assert claims.quiet_retry_at(plan, "Asia/Makassar", late) == at(WITA, 2026, 12, 8, 8, 0)
    early = at(WITA, 2026, 12, 7, 20, 0)
    assert claims.quiet_retry_at(plan, "Asia/Makassar", early) == early
    assert claims.quiet_retry_at(plan, None, late) == late


def test_the_estimate_counts_who_a_blast_still_sending_at_the_window_start_leaves_waiting() -> None:
    from shared.parsing.quiet import quiet_wait
    from shared.parsing.zones import zone_of

    at_20 = at(WITA, 2026, 12, 7, 20, 0)
    est = quiet_wait([(at_20, "Asia/Makassar", 10_000)], 1.0, NIGHT, zone_of)
    assert (est.recipients, est.until) == (6_400, at(WITA, 2026, 12, 8, 8, 0))  # 3,600 go out before 21:00
    assert est.line() == "about 6,400 recipients will wait until 08:00 WITA"
    # A second zone due later starts after the first is done: at 100/s everything goes out before 21:00.
    fast = quiet_wait(
        [(at_20, "Asia/Makassar", 10_000), (at_20 + timedelta(hours=1), "Asia/Jakarta", 100)],
        100.0,
        NIGHT,
        zone_of,
    )
    assert fast.recipients == 0 and fast.line() is None
    # Slower: Makassar's 3,600 from 19:30 WITA end at 20:30 WITA, 21:30 in Jayapura (due 20:50 WIT): its 100 wait.
    wit = ZoneInfo("Asia/Jayapura")
    slow = quiet_wait(
        [
            (at_20 - timedelta(minutes=30), "Asia/Makassar", 3_600),
            (at(wit, 2026, 12, 7, 20, 50), "Asia/Jayapura", 100),
        ],
        1.0,
        NIGHT,
        zone_of,
    )
    assert slow.recipients == 100 and slow.line() == "about 100 recipients will wait until 08:00 WIT"


async def test_create_says_how_many_will_wait_when_sending_runs_into_the_window(
    db: Settings, tmp_path: Path
) -> None:
    settings = db.model_copy(update={"BLAST_RATE_LIMIT": 1.0})
    send = evening_wita() - timedelta(hours=1, seconds=1)  # 20:59:59 WITA: one message before 21:00
    path = tmp_path / "w.csv"
    path.write_text("phone,1,2,timezone\n" + "".join(f"+62812345678{i:02d},A,B,WITA\n" for i in range(3)))
    await make_template()
    result = await blasts.create_blast(
        settings=settings,
        name="q",
        template="order_update",
        language="en_US",
        recipients=path,
        send_at=send.isoformat(),
        quiet_hours="21:00-08:00",
    )
    assert result.quiet_note == "about 2 recipients will wait until 08:00 WITA"
