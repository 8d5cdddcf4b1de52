"""Provides what the console, the CLI and the API read about blasts: lists, counts, one blast's detail, a
local-time blast's progress per zone, what quiet hours hold, and the audit trail."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count

from shared.clock import utcnow
from shared.errors import NotFound
from shared.models import AuditLog, Blast, Recipient
from shared.parsing.quiet import parse_quiet_hours
from shared.parsing.zones import due_at, zone_of
from shared.status import BlastStatus, RecipientStatus

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus


@dataclass(frozen=True, slots=True)
class BlastSummary:
    id: int
    name: str
    template: str
    language: str
    status: BlastStatus
    send_at: datetime | None
    counts: dict[str, int]
    total: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class BlastDetail:
    id: int
    name: str
    template: str
    language: str
    status: BlastStatus
    send_at: datetime | None
    valid_until: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    created_by: str
    error: str | None
    error_code: int | None
    counts: dict[str, int]
    total: int
    constants: dict[str, str] = field(default_factory=dict)
    #: Local-time blasts: the wall-clock send time every zone gets, and the zone of recipients without one.
    local_time: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class ZoneProgress:
    """One due group of a local-time blast: its zone, when it is due, and how far it got."""

    zone: str
    due_at: datetime | None
    total: int
    sent: int  # accepted by Meta (SENT, DELIVERED or READ)
    waiting: int  # PENDING or SENDING
    failed: int  # FAILED or UNKNOWN

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "total": self.total,
            "sent": self.sent,
            "waiting": self.waiting,
            "failed": self.failed,
        }


def _summary(b: Blast) -> BlastSummary:
    return BlastSummary(
        id=b.id,
        name=b.name,
        template=b.template.name,
        language=b.template.language,
        status=B(b.status),
        send_at=b.send_at,
        counts=b.counts(),
        total=b.total,
        last_error=b.last_error,
    )


def _detail(b: Blast) -> BlastDetail:
    return BlastDetail(
        id=b.id,
        name=b.name,
        template=b.template.name,
        language=b.template.language,
        status=B(b.status),
        send_at=b.send_at,
        valid_until=b.valid_until,
        started_at=b.started_at,
        finished_at=b.finished_at,
        created_at=b.created_at,
        created_by=b.created_by,
        error=b.last_error,
        error_code=b.error_code,
        counts=b.counts(),
        total=b.total,
        constants=dict(b.constants or {}),
        local_time=b.local_time,
        timezone=b.timezone,
    )


async def list_blasts(
    *,
    statuses: Sequence[BlastStatus] | None = None,
    text: str | None = None,
    limit: int = 500,
    offset: int = 0,
    order: str = "-id",
    before_id: int | None = None,
) -> list[BlastSummary]:
    """Blasts, newest first by default; filtered by status and by text in the name or template name.

    `before_id` pages newest-first by keyset (ids below it), which costs the same at any depth.
    """
    query = Blast.all().select_related("template")
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    if statuses:
        query = query.filter(status__in=list(statuses))
    if text:
        query = query.filter(Q(name__icontains=text) | Q(template__name__icontains=text))
    rows = await query.order_by(order, "-id").offset(offset).limit(limit)
    return [_summary(b) for b in rows]


async def count_by_status() -> dict[str, int]:
    """How many blasts are in each status."""
    rows = await Blast.annotate(n=Count("id")).group_by("status").values_list("status", "n")
    out: dict[str, int] = {s.value: 0 for s in BlastStatus}
    for status, n in rows:
        out[B(status).value] = int(n)
    return out


async def get_blast(blast_id: int) -> Blast:
    blast = await Blast.get_or_none(id=blast_id)
    if blast is None:
        raise NotFound(f"blast {blast_id} does not exist")
    return blast


async def show_blast(blast_id: int) -> BlastDetail:
    """One blast with its counters.

    Raises:
        NotFound: no blast with that id.
    """
    blast = await Blast.get_or_none(id=blast_id).select_related("template")
    if blast is None:
        raise NotFound(f"blast {blast_id} does not exist")
    return _detail(blast)


async def zone_progress(blast_id: int) -> list[ZoneProgress]:
    """Per zone of a local-time blast (empty for other blasts): due at, total, sent, waiting, failed; earliest
    due first. One grouped count over the blast's recipients (a console read, not the send path)."""
    rows = await (
        Recipient.filter(blast_id=blast_id, zone__isnull=False)
        .annotate(n=Count("id"))
        .group_by("zone", "due_at", "status")
        .values_list("zone", "due_at", "status", "n")
    )
    groups: dict[tuple[str, datetime | None], dict[str, int]] = {}
    for zone, due, status, n in rows:
        counts = groups.setdefault((str(zone), due), {})
        counts[R(status).value] = counts.get(R(status).value, 0) + int(n)
    out = []
    for (zone, due), c in groups.items():
        out.append(
            ZoneProgress(
                zone=zone,
                due_at=due,
                total=sum(c.values()),
                sent=c.get("SENT", 0) + c.get("DELIVERED", 0) + c.get("READ", 0),
                waiting=c.get("PENDING", 0) + c.get("SENDING", 0),
                failed=c.get("FAILED", 0) + c.get("UNKNOWN", 0),
            )
        )
    out.sort(key=lambda z: (z.due_at is None, z.due_at or datetime.min, z.zone))
    return out


@dataclass(frozen=True, slots=True)
class QuietHold:
    """Recipients of a blast with quiet hours that wait for the window to end in their zone."""

    quiet_hours: str
    held: int
    next_release: datetime | None
    zone: str | None  # the zone of the next release

    def release_text(self) -> str:
        """ "08:00 WITA": the next release in its zone's wall-clock time."""
        if self.next_release is None or self.zone is None:
            return "-"
        return self.next_release.astimezone(zone_of(self.zone)).strftime("%H:%M %Z").strip()

    def line(self) -> str:
        return f"held by quiet hours: {self.held:,}" + (
            f", next release {self.release_text()}" if self.held else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "quiet_hours": self.quiet_hours,
            "held": self.held,
            "next_release": self.next_release.isoformat() if self.next_release else None,
            "next_release_local": self.release_text() if self.held else None,
            "zone": self.zone,
        }


async def quiet_hold(blast_id: int, *, now: datetime | None = None) -> QuietHold | None:
    """How many PENDING recipients of a blast with quiet hours are held by them, and the next release (None for
    a blast without quiet hours). Held: due time moved past the window at import and not come yet, or due but
    given back by a claim (next_attempt_at) while their zone is inside the window. A console read."""
    blast = await Blast.get_or_none(id=blast_id)
    if blast is None or not blast.quiet_hours:
        return None
    quiet = parse_quiet_hours(blast.quiet_hours)
    assert quiet is not None
    now = now or utcnow()
    wall = datetime.fromisoformat(blast.local_time) if blast.local_time else None
    waiting = await (
        Recipient.filter(blast_id=blast_id, status=R.PENDING, due_at__gt=now)
        .annotate(n=Count("id"))
        .group_by("zone", "due_at")
        .values_list("zone", "due_at", "n")
    )
    given_back = await (
        Recipient.filter(blast_id=blast_id, status=R.PENDING, due_at__lte=now, next_attempt_at__gt=now)
        .annotate(n=Count("id"))
        .group_by("zone")
        .values_list("zone", "n")
    )
    held, nxt, nxt_zone = 0, None, None
    found: list[tuple[str, datetime, int]] = []
    for zone, due, n in waiting:
        if zone is None or due is None:
            continue
        planned = due_at(wall, zone_of(str(zone))) if wall is not None else blast.send_at
        if planned is None or due > planned:  # else it waits for its local time, not for the quiet hours
            found.append((str(zone), due, int(n)))
    for zone, n in given_back:
        if zone is not None:
            opens = quiet.release(now, zone_of(str(zone)))
            if opens > now:
                found.append((str(zone), opens, int(n)))
    for zone, opens, n in found:
        held += n
        if nxt is None or opens < nxt:
            nxt, nxt_zone = opens, zone
    return QuietHold(blast.quiet_hours, held, nxt, nxt_zone)


async def audit_trail(blast_id: int, *, limit: int = 200) -> list[AuditLog]:
    return await AuditLog.filter(entity="blast", entity_id=str(blast_id)).order_by("-id").limit(limit)


async def count_blasts(*, statuses: Sequence[BlastStatus] | None = None, text: str | None = None) -> int:
    """How many blasts `list_blasts` would page through with these filters."""
    query = Blast.all()
    if statuses:
        query = query.filter(status__in=list(statuses))
    if text:
        query = query.filter(Q(name__icontains=text) | Q(template__name__icontains=text))
    return await query.count()
