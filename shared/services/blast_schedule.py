"""Provides scheduling a draft that keeps quiet hours: each recipient's zone (found as at create when the draft
did not store it) and its due time from the send time given now, written in bounded batches, then the one
DRAFT -> SCHEDULED transition, with the "will wait until" estimate of create."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tortoise import connections
from tortoise.expressions import F
from tortoise.functions import Count, Max, Min
from tortoise.transactions import in_transaction

from shared.config import Settings
from shared.errors import InvalidTransition, ValidationFailed
from shared.models import Blast, Recipient
from shared.parsing.quiet import QuietHours
from shared.parsing.zones import ZoneResolver
from shared.services import transitions
from shared.services.blast_import import ZONE_COLUMN
from shared.services.blasts import quiet_note
from shared.status import BlastStatus, RecipientStatus

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus

#: Recipients whose zone is looked up per read (a draft made before it had quiet hours stored none).
ZONE_BATCH = 5000
#: Recipient ids whose due time one UPDATE (and one transaction) writes.
DUE_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A blast given its send time; `quiet_note`: "about 3,200 recipients will wait until 08:00 WITA"."""

    send_at: datetime
    quiet_note: str | None = None


async def schedule_quiet_draft(
    blast: Blast,
    when: datetime,
    quiet: QuietHours,
    *,
    settings: Settings,
    actor: str,
    action: str,
) -> Scheduled:
    """DRAFT -> SCHEDULED at `when` for a draft with quiet hours: a recipient whose local time then is inside
    them is due when they end in its zone (as `create_blast` does for a blast created scheduled).

    The zones and due times are written in batches of their own transactions while the blast is still a DRAFT
    (nothing claims a draft's recipients); the transition then checks that nobody edited the draft meanwhile
    (its generation), so a crash or a concurrent edit leaves a DRAFT that can be scheduled again.

    Raises:
        ValidationFailed: its valid-until time is before some recipients' due time.
        InvalidTransition: the blast is no longer a DRAFT, or was edited meanwhile.
    """
    zones = ZoneResolver(None, blast.timezone or settings.BLAST_TIMEZONE, send_at=when, quiet=quiet)
    await _fill_zones(blast.id, zones)
    counts = cast(
        list[tuple[str, int]],
        await Recipient.filter(blast_id=blast.id)
        .annotate(n=Count("id"))
        .group_by("zone")
        .values_list("zone", "n"),
    )
    dues: dict[str, datetime] = {}
    for zone, _ in counts:
        due = zones.due(str(zone))
        assert due is not None  # send_at and quiet are given
        dues[str(zone)] = due
    due_times = sorted(set(dues.values()))
    if not due_times:
        raise ValidationFailed(f"blast {blast.id} has no recipients; give it a recipients file first")
    if blast.valid_until is not None and blast.valid_until <= due_times[-1]:
        raise ValidationFailed(
            f"blast {blast.id}'s valid-until time is before the end of the quiet hours ({quiet}) of some "
            "recipients; edit --valid-until first"
        )
    await _write_due_times(blast.id, dues)
    async with in_transaction() as tx:
        unchanged = (
            await Blast.filter(id=blast.id, status=B.DRAFT, generation=blast.generation)
            .using_db(tx)
            .update(generation=F("generation") + 1)
        )
        if not unchanged:
            raise InvalidTransition(f"blast {blast.id} was edited or scheduled meanwhile; try again")
        await transitions.transition_blast(
            blast.id,
            B.SCHEDULED,
            actor=actor,
            action=action,
            sources=[B.DRAFT],
            conn=tx,
            values={"send_at": when, "due_times": [t.isoformat() for t in due_times]},
            detail={"send_at": when.isoformat(), "quiet_hours": str(quiet)},
        )
    note = quiet_note(zones, ((str(z), n) for z, n in counts), settings)
    log.info(
        "blast %s scheduled with quiet hours %s: %s zones, %s due times",
        blast.id,
        quiet,
        len(dues),
        len(due_times),
    )
    return Scheduled(when, note)


async def _fill_zones(blast_id: int, zones: ZoneResolver) -> None:
    """Give a zone to the recipients that have none (a draft given quiet hours after its import), a page at a
    time: the zone cell of their params if any, else the number's, else the blast's zone."""
    last = 0
    while True:
        rows = cast(
            list[tuple[int, str, dict[str, Any]]],
            await Recipient.filter(blast_id=blast_id, status=R.PENDING, id__gt=last, zone__isnull=True)
            .order_by("id")
            .limit(ZONE_BATCH)
            .values_list("id", "phone", "params"),
        )
        if not rows:
            return
        last = rows[-1][0]
        by_zone = await asyncio.to_thread(_zones_of, rows, zones)
        async with in_transaction() as tx:
            for zone, ids in by_zone.items():
                await Recipient.filter(id__in=ids).using_db(tx).update(zone=zone)


def _zones_of(
    rows: Sequence[tuple[int, str, Mapping[str, Any]]], zones: ZoneResolver
) -> dict[str, list[int]]:
    out: defaultdict[str, list[int]] = defaultdict(list)
    for rid, phone, params in rows:
        cell = (params or {}).get(ZONE_COLUMN)
        try:
            zone = zones.resolve(phone, None if cell is None else str(cell))
        except ValueError:
            zone = zones.default_zone  # a bad cell was accepted before zones were kept: the blast's zone
        out[zone].append(rid)
    return dict(out)


async def _write_due_times(blast_id: int, dues: Mapping[str, datetime]) -> None:
    """Set each recipient's due time from its zone: one UPDATE per DUE_BATCH ids, each its own transaction (a
    million recipients never hold the database's write lock for long, and nothing is walked row by row)."""
    bounds = await (
        Recipient.filter(blast_id=blast_id)
        .annotate(lo=Min("id"), hi=Max("id"))
        .first()
        .values_list("lo", "hi")
    )
    if bounds is None or bounds[0] is None:
        return
    lo, hi = int(bounds[0]), int(bounds[1])
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    zones = sorted(dues)
    if pg:
        marks = [f"WHEN ${2 * i + 1} THEN ${2 * i + 2}::timestamptz" for i in range(len(zones))]
        n = 2 * len(zones)
        where = f"blast_id = ${n + 1} AND status = ${n + 2} AND id >= ${n + 3} AND id < ${n + 4}"
        values: list[Any] = [v for z in zones for v in (z, dues[z])]
    else:
        marks = ["WHEN ? THEN ?" for _ in zones]
        where = "blast_id = ? AND status = ? AND id >= ? AND id < ?"
        values = [v for z in zones for v in (z, dues[z].isoformat(" "))]
    sql = f"UPDATE recipient SET due_at = CASE zone {' '.join(marks)} END WHERE {where}"  # marks only
    for start in range(lo, hi + 1, DUE_BATCH):
        async with in_transaction() as tx:
            await tx.execute_query(sql, [*values, blast_id, R.PENDING.value, start, start + DUE_BATCH])
    log.debug("blast %s: due times of %s zones written (ids %s-%s)", blast_id, len(zones), lo, hi)
