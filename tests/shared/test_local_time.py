"""Local-time blasts in the services: zones from the CSV, due times, claims that take only due groups."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tortoise import connections

from shared.clock import utcnow
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.models import Blast, Recipient
from shared.services import blast_actions, blast_reads, blasts, claims
from shared.status import BlastStatus
from tests.factories import make_blast, make_template

CSV = (
    "phone,1,2,timezone\n"
    "+6281234567890,Ada,A1,WIB\n"
    "+6281234567891,Bob,B2,WITA\n"
    "+6281234567892,Cy,C3,+09:00\n"
    "+6281234567893,Di,D4,Mars/Olympus\n"
    "+493012345678,Eve,E5,\n"  # no zone written: phonenumbers says Europe/Berlin
    "+628112345678,Fay,F6,\n"  # phonenumbers gives two zones: the blast's (--timezone)
)


def tomorrow_9() -> datetime:
    day = (utcnow() + timedelta(days=2)).date()
    return datetime(day.year, day.month, day.day, 9, 0)


async def create_local(db: Settings, tmp_path: Path, **kw: object) -> blasts.CreateResult:
    await make_template()
    path = tmp_path / "r.csv"
    path.write_text(CSV, encoding="utf-8")
    args: dict[str, object] = {
        "name": "promo",
        "template": "order_update",
        "language": "en_US",
        "recipients": path,
        "send_at": tomorrow_9().strftime("%Y-%m-%d %H:%M"),
        "local_time": True,
        "timezone": "Asia/Makassar",
    }
    args.update(kw)
    return await blasts.create_blast(settings=db, **args)  # type: ignore[arg-type]


async def test_each_recipient_is_due_at_the_wall_clock_time_of_its_zone(db: Settings, tmp_path: Path) -> None:
    result = await create_local(db, tmp_path)
    assert result.recipients == 5
    assert [(r.row, r.value) for r in result.rejected] == [(4, "Mars/Olympus")]
    assert "timezone: unknown time zone 'Mars/Olympus'" in result.rejected[0].reason
    wall = tomorrow_9()
    rows = await Recipient.filter(blast_id=result.id).order_by("row").values_list("phone", "zone", "due_at")
    expected = {
        "+6281234567890": "Asia/Jakarta",
        "+6281234567891": "Asia/Makassar",
        "+6281234567892": "+09:00",
        "+493012345678": "Europe/Berlin",
        "+628112345678": "Asia/Makassar",
    }
    for phone, zone, due in rows:
        assert zone == expected[phone]
        tz = ZoneInfo(zone) if "/" in zone else ZoneInfo("Asia/Jayapura")  # +09:00 has Jayapura's time
        assert due.astimezone(tz).replace(tzinfo=None) == wall
    blast = await Blast.get(id=result.id)
    earliest = wall.replace(tzinfo=ZoneInfo("Asia/Jayapura")).astimezone(UTC)
    assert blast.status == BlastStatus.SCHEDULED and blast.send_at == earliest
    assert blast.local_time == wall.strftime("%Y-%m-%dT%H:%M") and blast.timezone == "Asia/Makassar"
    assert len(blast.due_times) == 4  # +09:00, Makassar, Jakarta, Berlin
    zones = await blast_reads.zone_progress(result.id)
    assert [(z.zone, z.total, z.waiting, z.sent) for z in zones] == [
        ("+09:00", 1, 1, 0),
        ("Asia/Makassar", 2, 2, 0),
        ("Asia/Jakarta", 1, 1, 0),
        ("Europe/Berlin", 1, 1, 0),
    ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"send_at": "+10m"}, "wall-clock time"),
        ({"send_at": "2030-12-08T09:00+07:00"}, "no offset"),
        ({"send_at": None}, "needs --send-at"),
        ({"timezone": "Nowhere/City"}, "--timezone: unknown time zone"),
        ({"draft": True}, "cannot be drafts"),
    ],
)
async def test_bad_local_time_options_are_one_line_and_create_nothing(
    db: Settings, tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        await create_local(db, tmp_path, **kw)
    assert "\n" not in str(info.value)
    assert await Blast.all().count() == 0


async def test_a_time_already_past_in_the_earliest_zone_is_refused(db: Settings, tmp_path: Path) -> None:
    past = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    with pytest.raises(ValidationFailed, match="in the past"):
        await create_local(db, tmp_path, send_at=past)
    assert await Blast.all().count() == 0


async def test_the_send_time_of_a_local_time_blast_cannot_be_moved(db: Settings, tmp_path: Path) -> None:
    result = await create_local(db, tmp_path)
    with pytest.raises(ValidationFailed, match="sends at local time"):
        await blast_actions.reschedule_blast(result.id, settings=db, send_at="+1h")


async def test_a_timezone_column_is_checked_in_an_ordinary_blast_too(db: Settings, tmp_path: Path) -> None:
    result = await create_local(db, tmp_path, local_time=False, send_at=None)
    assert [r.row for r in result.rejected] == [4]
    assert await Recipient.filter(blast_id=result.id, due_at__isnull=False).count() == 0
    assert (await Blast.get(id=result.id)).local_time is None


async def test_claims_take_only_the_groups_whose_time_has_come(db: Settings) -> None:
    blast = await make_blast(await make_template(), n=9, status=BlastStatus.PROCESSING)
    now = utcnow()
    groups = [now - timedelta(seconds=5), now - timedelta(seconds=1), now + timedelta(hours=1)]
    ids: list[int] = [
        int(str(i))
        for i in await Recipient.filter(blast_id=blast.id).order_by("id").values_list("id", flat=True)
    ]
    for i, rid in enumerate(ids):  # interleaved: group i % 3
        await Recipient.filter(id=rid).update(due_at=groups[i % 3], zone=f"+0{i % 3}:00")
    await Blast.filter(id=blast.id).update(
        local_time="2030-01-01T09:00", due_times=[g.isoformat() for g in groups]
    )
    plan = await claims.load_plan(blast.id)
    assert plan is not None and plan.due_times == tuple(groups)
    first = await claims.claim_due_page(blast.id, "d:1:x/a", 4, plan.due_times)
    assert [c.id for c in first] == [
        ids[0],
        ids[1],
        ids[3],
        ids[6],
    ]  # the earliest group first, then the next
    rest = await claims.claim_due_page(blast.id, "d:1:x/a", 10, plan.due_times)
    assert sorted(c.id for c in rest) == [ids[4], ids[7]]
    assert await claims.claim_due_page(blast.id, "d:1:x/a", 10, plan.due_times) == []
    assert not await claims.has_claimable(blast.id)  # the third group is an hour away
    assert [(b, t) for b, t in await claims.next_due_times(utcnow())] == [(blast.id, groups[2])]


async def test_sqlite_claims_of_a_local_time_blast_use_the_due_index(db: Settings) -> None:
    """The claim and the 'anything due?' look walk recipient_due, not the blast (SQLite's plan; PostgreSQL's
    planner chooses by statistics, so it is not asserted there)."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "sqlite":
        pytest.skip("SQLite's query plan")
    for sql, args in (
        (claims._CLAIM_DUE_SQLITE, ["t", "2030", 1, "2030", 10, "2030"]),
        (claims._DUE_EXISTS_SQLITE, [1, "2030"]),
    ):
        plan = await conn.execute_query_dict("EXPLAIN QUERY PLAN " + sql, args)
        details = " | ".join(str(r["detail"]) for r in plan)
        assert "INDEX recipient_due" in details, details


async def test_the_demo_local_time_example_has_three_zones_one_minute_apart(db: Settings) -> None:
    from console.demo import seed_local_time

    await make_template(components=[{"type": "BODY", "text": "Hi {{1}}, order {{2}}."}])
    result = await seed_local_time(db)
    assert result.recipients == 9 and result.rejected_total == 0
    blast = await Blast.get(id=result.id)
    due = claims.parse_due_times(blast.due_times)
    assert len(due) == 3 and [b - a for a, b in itertools.pairwise(due)] == [timedelta(minutes=1)] * 2
    assert timedelta(0) < due[0] - utcnow() <= timedelta(minutes=2)
    assert [z.total for z in await blast_reads.zone_progress(result.id)] == [3, 3, 3]


async def test_a_pool_chunk_claims_due_groups_for_its_own_number_only(db: Settings) -> None:
    """A local-time (or quiet-hours) blast sent from a pool: each number's chunk takes due recipients not yet
    assigned to a number, or assigned to its own, and assigns them to it; a retry keeps its number."""
    blast = await make_blast(await make_template(), n=6, status=BlastStatus.PROCESSING)
    due = utcnow() - timedelta(seconds=1)
    await Recipient.filter(blast_id=blast.id).update(due_at=due, zone="+07:00")
    await Blast.filter(id=blast.id).update(local_time="2030-01-01T09:00", due_times=[due.isoformat()])
    plan = await claims.load_plan(blast.id)
    assert plan is not None
    a = await claims.claim_due_page(blast.id, "d:1:x/a", 2, plan.due_times, sender="111")
    b = await claims.claim_due_page(blast.id, "d:1:x/b", 10, plan.due_times, sender="222")
    assert len(a) == 2 and len(b) == 4 and not {c.id for c in a} & {c.id for c in b}
    owners = dict(await Recipient.filter(blast_id=blast.id).values_list("id", "sender_id"))
    assert {owners[c.id] for c in a} == {"111"} and {owners[c.id] for c in b} == {"222"}
    # number 111's rows come back (given back, due again): only 111's chunk may take them
    await Recipient.filter(id__in=[c.id for c in a]).update(lease_owner=None, lease_expires_at=None)
    assert await claims.claim_due_page(blast.id, "d:1:x/c", 10, plan.due_times, sender="222") == []
    again = await claims.claim_due_page(blast.id, "d:1:x/d", 10, plan.due_times, sender="111")
    assert sorted(c.id for c in again) == sorted(c.id for c in a)
