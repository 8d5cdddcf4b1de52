"""Provides the blast operations both programs call: create from CSV, edit, list, show, cancel, pause, resume,
retry, reschedule. Each is a validated transition recorded in the audit log with the acting user.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from shared import actors
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import CsvError, InvalidTransition, NotFound, TooLarge, ValidationFailed
from shared.events import publish
from shared.models import AuditLog, Blast, Recipient, Template
from shared.parsing.csv_rows import AcceptedRow, RecipientCsv, RejectedRow
from shared.parsing.quiet import parse_quiet_hours, quiet_wait
from shared.parsing.send_at import parse_when, require_future
from shared.parsing.template_params import param_keys
from shared.parsing.zones import ZoneResolver, due_at, parse_zone, zone_of
from shared.services import transitions
from shared.services.senders import resolve_pool as sender_pool
from shared.status import BLAST_EDITABLE, BlastStatus, RecipientStatus, TemplateStatus
from shared.whatsapp import errors as meta_errors

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus

#: The optional CSV column naming each recipient's zone (IANA, WIB/WITA/WIT or +08:00).
ZONE_COLUMN = "timezone"
#: Rows written per INSERT batch while importing.
IMPORT_BATCH = 5000
#: Rejected rows kept in a create/edit result (the count is exact; the list stops here).
MAX_REJECTED_LISTED = 10_000
#: Error codes a retry never re-queues: the user opted out (131050).
NEVER_RETRY_CODES = meta_errors.NEVER_RETRY_CODES
#: Per-user marketing cap: retrying within 24 h just fails again (Meta).
MARKETING_CAP_CODE = meta_errors.MARKETING_CAP


def current_actor() -> str:
    """The OS user acting (recorded in the audit log)."""
    try:
        return actors.current_actor()
    except Exception:
        return "unknown"


def daemon_actor() -> str:
    return actors.daemon_actor()


# --------------------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    row: int
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class CreateResult:
    id: int
    status: BlastStatus
    recipients: int
    rejected: list[Rejected]
    rejected_total: int
    existing: bool = False
    #: Rows rejected because their number came earlier in the file (counted in rejected_total too).
    duplicates: int = 0
    #: Quiet hours: "about 3,200 recipients will wait until 08:00 WITA" (None when nobody is expected to wait).
    quiet_note: str | None = None


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


# --------------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------------------------


class _Bloom:
    """A Bloom filter of the numbers seen so far, so duplicate checks stay in flat memory for any file size."""

    def __init__(self, expected: int) -> None:
        self.m = max(1 << 16, expected * 12)
        self.bits = bytearray(self.m // 8 + 1)

    def _positions(self, key: str) -> Iterator[int]:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        for i in range(7):
            yield (h1 + i * h2) % self.m

    def add_check(self, key: str) -> bool:
        """Add key; True if it may have been there before."""
        seen = True
        for pos in self._positions(key):
            byte, bit = divmod(pos, 8)
            if not self.bits[byte] & (1 << bit):
                seen = False
                self.bits[byte] |= 1 << bit
        return seen


@dataclass(slots=True)
class _ImportStats:
    accepted: int = 0
    rejected_total: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def reject(self, row: int, value: str, reason: str, *, duplicate: bool = False) -> None:
        self.rejected_total += 1
        self.duplicates += duplicate
        if len(self.rejected) < MAX_REJECTED_LISTED:
            self.rejected.append(Rejected(row=row, value=value, reason=reason))


def _next_chunk(reader: Iterator[AcceptedRow | RejectedRow], n: int) -> list[AcceptedRow | RejectedRow]:
    out: list[AcceptedRow | RejectedRow] = []
    for item in reader:
        out.append(item)
        if len(out) >= n:
            break
    return out


async def _import_rows(
    blast_id: int,
    csv: RecipientCsv,
    expected_rows: int,
    tx: BaseDBAsyncClient,
    zones: ZoneResolver | None = None,
) -> _ImportStats:
    """Stream the CSV into recipients of `blast_id` inside transaction `tx` (with `zones`: each with its zone,
    and its due time for a local-time blast; a row whose `timezone` cell names no zone is rejected)."""
    stats = _ImportStats()
    bloom = _Bloom(expected_rows)
    reader = iter(csv)
    while True:
        # Parsing is CPU work: run it off the event loop so a console stays responsive.
        chunk = await asyncio.to_thread(_next_chunk, reader, IMPORT_BATCH)
        if not chunk:
            break
        batch: dict[str, AcceptedRow] = {}
        row_zones: dict[int, str] = {}
        maybe_dupes: list[AcceptedRow] = []
        for item in chunk:
            if isinstance(item, RejectedRow):
                stats.reject(item.row, item.value, item.reason)
                continue
            if zones is not None:
                cell = item.params.get(ZONE_COLUMN)
                try:
                    row_zones[item.row] = zones.resolve(item.phone, cell)
                except ValueError as exc:
                    stats.reject(item.row, str(cell).strip()[:200], f"{ZONE_COLUMN}: {exc}")
                    continue
            if item.phone in batch:
                stats.reject(
                    item.row, item.phone, f"duplicate of row {batch[item.phone].row}", duplicate=True
                )
                continue
            if bloom.add_check(item.phone):
                maybe_dupes.append(item)
                continue
            batch[item.phone] = item
        if maybe_dupes:
            phones = [r.phone for r in maybe_dupes]
            earlier = dict(
                await Recipient.filter(blast_id=blast_id, phone__in=phones)
                .using_db(tx)
                .values_list("phone", "row")
            )
            for item in maybe_dupes:
                first = earlier.get(item.phone) or (batch[item.phone].row if item.phone in batch else None)
                if first is not None:
                    stats.reject(item.row, item.phone, f"duplicate of row {first}", duplicate=True)
                else:
                    batch[item.phone] = item
        if batch:
            if zones is None:
                await _insert_recipients(blast_id, list(batch.values()), tx)
            else:
                await _insert_zoned_recipients(blast_id, list(batch.values()), tx, zones, row_zones)
            stats.accepted += len(batch)
    return stats


async def _insert_recipients(blast_id: int, rows: Sequence[AcceptedRow], tx: BaseDBAsyncClient) -> None:
    """One multi-row INSERT per batch: building a tortoise model per row costs more than the database work."""
    now = utcnow()
    if tx.capabilities.dialect == "postgres":
        marks = "($1, $2, $3::jsonb, $4, $5, 0, $6, $6)"
    else:
        marks = "(?, ?, ?, ?, ?, 0, ?, ?)"
    sql = (
        'INSERT INTO recipient (blast_id, phone, params, "row", status, attempts, created_at, updated_at) '
        f"VALUES {marks}"
    )
    pending = RecipientStatus.PENDING.value
    if tx.capabilities.dialect == "postgres":
        values = [
            [blast_id, r.phone, json.dumps(r.params, separators=(",", ":")), r.row, pending, now]
            for r in rows
        ]
    else:
        stamp = now.isoformat(" ")
        values = [
            [blast_id, r.phone, json.dumps(r.params, separators=(",", ":")), r.row, pending, stamp, stamp]
            for r in rows
        ]
    await tx.execute_many(sql, values)


async def _insert_zoned_recipients(
    blast_id: int,
    rows: Sequence[AcceptedRow],
    tx: BaseDBAsyncClient,
    zones: ZoneResolver,
    row_zones: Mapping[int, str],
) -> None:
    """`_insert_recipients` with each recipient's zone (`row_zones`, by row) and due time."""
    now = utcnow()
    pg = tx.capabilities.dialect == "postgres"
    marks = "($1, $2, $3::jsonb, $4, $5, 0, $6, $6, $7, $8)" if pg else "(?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
    sql = (
        'INSERT INTO recipient (blast_id, phone, params, "row", status, attempts, created_at, updated_at, '
        f"zone, due_at) VALUES {marks}"
    )
    pending = RecipientStatus.PENDING.value
    values: list[list[Any]] = []
    for r in rows:
        zone = row_zones[r.row]
        due = zones.due(zone)
        params = json.dumps(r.params, separators=(",", ":"))
        if pg:
            values.append([blast_id, r.phone, params, r.row, pending, now, zone, due])
        else:
            stamp = now.isoformat(" ")
            values.append(
                [blast_id, r.phone, params, r.row, pending, stamp, stamp, zone, due and due.isoformat(" ")]
            )
    await tx.execute_many(sql, values)


def open_csv(
    path: str | Path,
    template: Template,
    constants: Mapping[str, str],
    settings: Settings,
    display_name: str | None = None,
) -> RecipientCsv:
    """The recipients CSV read against what the template needs (used by create, edit and preview).

    Raises:
        ValidationFailed: the template has parts blast cannot fill.
    """
    keys = param_keys(template.components or [], template.parameter_format)
    if keys.unsupported:
        raise ValidationFailed(
            f"template {template.name} ({template.language}) has parts blast cannot fill yet "
            f"({', '.join(keys.unsupported)}); use another template"
        )
    return RecipientCsv(
        path,
        required_keys=list(keys.all_keys),
        constants=constants,
        default_region=settings.BLAST_DEFAULT_REGION,
        template_label=f"template {template.name} ({template.language})",
        display_name=display_name,
    )


def _all_rejected(n: int) -> str:
    return "its one row was rejected" if n == 1 else f"all {n} rows were rejected"


def _estimate_rows(path: str | Path) -> int:
    try:
        return max(1000, Path(path).stat().st_size // 16)
    except OSError:
        return 1000


async def approved_template(name: str, language: str) -> Template:
    """The local template a blast or a test send may use.

    Raises:
        ValidationFailed: no such template or language, or it is not approved.
    """
    template = await Template.get_or_none(name=name, language=language)
    if template is None:
        others = await Template.filter(name=name).values_list("language", flat=True)
        if others:
            raise ValidationFailed(
                f"template {name!r} has no language {language!r} (it has {', '.join(sorted(map(str, others)))})"
            )
        raise ValidationFailed(
            f"unknown template {name!r}; run `blast-console template sync` or check the name"
        )
    if TemplateStatus(template.status) != TemplateStatus.APPROVED:
        raise ValidationFailed(
            f"template {name} ({language}) is {TemplateStatus(template.status).value}; only APPROVED templates can be sent"
        )
    return template


_LOCAL_FIXED = (
    "blast {id} sends at local time or keeps quiet hours: its {what} cannot be changed (each recipient's due "
    "time is fixed); "
    "cancel it and create it again"
)


def _local_send_at(text: str | None) -> datetime:
    """The wall-clock time of a local-time blast ("2026-12-08 09:00": no offset, no "now" or "+10m")."""
    if not text:
        raise ValidationFailed("--local-time needs --send-at, a wall-clock time such as 2026-12-08 09:00")
    try:
        wall = datetime.fromisoformat(" ".join(text.split()))
    except ValueError:
        raise ValidationFailed(
            f"--send-at {text.strip()[:60]!r}: with --local-time write a wall-clock time such as 2026-12-08 09:00"
        ) from None
    if wall.tzinfo is not None:
        raise ValidationFailed(
            f"--send-at {text.strip()[:60]!r}: with --local-time the time has no offset (each zone gets it)"
        )
    return wall


def _parse_times(
    send_at: str | None, valid_until: str | None, settings: Settings
) -> tuple[datetime | None, datetime | None]:
    now = utcnow()
    when = parse_when(send_at, zone=settings.zone, now=now) if send_at else None
    if when is not None:
        require_future(when, now=now, field="--send-at")
    until = parse_when(valid_until, zone=settings.zone, now=now) if valid_until else None
    if until is not None:
        require_future(until, now=now, field="--valid-until")
        if until <= (when or now):
            raise ValidationFailed("--valid-until must be later than the send time")
    return when, until


async def create_blast(
    *,
    settings: Settings,
    name: str,
    template: str,
    language: str,
    recipients: str | Path,
    send_at: str | None = None,
    valid_until: str | None = None,
    client_key: str | None = None,
    constants: Mapping[str, str] | None = None,
    draft: bool = False,
    actor: str | None = None,
    recipients_name: str | None = None,
    senders: Sequence[str] | None = None,
    check_accepted: Callable[[int, list[str] | None], Awaitable[None]] | None = None,
    local_time: bool = False,
    timezone: str | None = None,
    quiet_hours: str | None = None,
) -> CreateResult:
    """Create a blast from a recipients CSV: SCHEDULED at `send_at` (or now), or DRAFT.

    `senders`: the phone number ids it sends from (one, or a pool of one WABA); None: the default sender.
    `check_accepted(accepted, pool)`: called before the blast is committed (e.g. the messaging-limit check of
    `--strict`); what it raises creates nothing.

    With `local_time`, `send_at` is a wall-clock time that each recipient gets in its own zone (the CSV's
    `timezone` column; else phonenumbers' zone when it names one; else `timezone` or BLAST_TIMEZONE): the
    blast starts at the earliest of these times and stays PROCESSING until the last.

    With quiet hours (`quiet_hours` "21:00-08:00", "off" for none, else BLAST_QUIET_HOURS; not for drafts) a
    recipient whose local time at its send time is inside the window is due when the window ends in its zone.

    Invalid and duplicate rows are reported in the result; any file-level problem raises and creates nothing.
    `recipients_name` is how messages name the file (default: its path).

    Raises:
        ValidationFailed: bad name, template, times.
        CsvError: the file cannot be used (one line naming the problem).
    """
    actor = actor or current_actor()
    name = name.strip()
    if not name:
        raise ValidationFailed("--name must not be empty")
    if len(name) > 200:
        raise ValidationFailed("--name is longer than 200 characters")
    if client_key:
        existing = await Blast.get_or_none(client_key=client_key)
        if existing is not None:
            return CreateResult(existing.id, B(existing.status), existing.total, [], 0, existing=True)
    if local_time and draft:
        raise ValidationFailed("--local-time blasts cannot be drafts: give --send-at and leave out --draft")
    tmpl = await approved_template(template, language)
    try:
        default_zone = parse_zone(timezone) if timezone else settings.BLAST_TIMEZONE
    except ValueError as exc:
        raise ValidationFailed(f"--timezone: {exc}") from None
    try:
        quiet = parse_quiet_hours(
            settings.BLAST_QUIET_HOURS if quiet_hours is None else quiet_hours, name="--quiet-hours"
        )
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    if quiet is not None and draft:
        if quiet_hours is not None:
            raise ValidationFailed("--quiet-hours cannot be used with --draft: give --send-at instead")
        quiet = None  # BLAST_QUIET_HOURS applies to blasts created scheduled (a draft has no send time yet)
    wall = _local_send_at(send_at) if local_time else None
    when, until = _parse_times(None if local_time else send_at, valid_until, settings)
    pool = await sender_pool(settings, senders)
    shown = recipients_name or str(recipients)
    csv = open_csv(recipients, tmpl, constants or {}, settings, recipients_name)
    start = None if draft or local_time else (when or utcnow())
    zones = (
        ZoneResolver(wall, default_zone, send_at=start, quiet=quiet)
        if local_time or quiet is not None or ZONE_COLUMN in csv.columns
        else None
    )
    status = B.DRAFT if draft else B.SCHEDULED
    try:
        async with in_transaction() as tx:
            blast = await Blast.create(
                name=name,
                template=tmpl,
                status=B.DRAFT,
                send_at=when or start,
                valid_until=until,
                client_key=client_key or None,
                constants=dict(constants or {}),
                senders=pool,
                created_by=actor,
                using_db=tx,
            )
            stats = await _import_rows(blast.id, csv, _estimate_rows(recipients), tx, zones)
            local: dict[str, Any] = {}
            if wall is not None and zones is not None and stats.accepted:
                due_times = zones.due_times()
                when = due_times[0]
                require_future(when, now=utcnow(), field="--send-at (earliest zone)")
                if until is not None and until <= due_times[-1]:
                    raise ValidationFailed("--valid-until must be later than the last zone's send time")
                local = {
                    "send_at": when,
                    "local_time": wall.isoformat(timespec="minutes"),
                    "timezone": default_zone,
                    "due_times": [t.isoformat() for t in due_times],
                }
            elif quiet is not None and zones is not None and stats.accepted:
                due_times = zones.due_times()
                if until is not None and until <= due_times[-1]:
                    raise ValidationFailed(
                        f"--valid-until is before the end of the quiet hours ({quiet}) of some recipients"
                    )
                local = {"timezone": default_zone, "due_times": [t.isoformat() for t in due_times]}
            quiet_note = None
            if quiet is not None and local:
                local["quiet_hours"] = str(quiet)
                groups = await (
                    Recipient.filter(blast_id=blast.id)
                    .using_db(tx)
                    .annotate(n=Count("id"))
                    .group_by("due_at", "zone")
                    .values_list("due_at", "zone", "n")
                )
                quiet_note = quiet_wait(
                    [(d, str(z), int(n)) for d, z, n in groups if d is not None and z is not None],
                    settings.BLAST_RATE_LIMIT,
                    quiet,
                    zone_of,
                ).line()
            if stats.accepted == 0:
                raise CsvError(
                    f"no usable recipients in {shown}: {_all_rejected(stats.rejected_total)}"
                    + (
                        f" (row {stats.rejected[0].row}: {stats.rejected[0].reason})"
                        if stats.rejected
                        else ""
                    )
                )
            if check_accepted is not None:
                await check_accepted(stats.accepted, pool)
            await (
                Blast.filter(id=blast.id)
                .using_db(tx)
                .update(total=stats.accepted, n_pending=stats.accepted, status=status, **local)
            )
            await transitions.audit(
                actor=actor,
                action="create",
                entity="blast",
                entity_id=blast.id,
                conn=tx,
                detail={
                    "recipients": stats.accepted,
                    "rejected": stats.rejected_total,
                    "status": status.value,
                    "send_at": when.isoformat() if when else None,
                    "template": f"{tmpl.name}/{tmpl.language}",
                    **({"senders": pool} if pool else {}),
                },
            )
    except IntegrityError:
        if client_key:
            existing = await Blast.get_or_none(client_key=client_key)
            if existing is not None:
                return CreateResult(existing.id, B(existing.status), existing.total, [], 0, existing=True)
        raise
    log.info(
        "blast %s created by %s: %s recipients, %s rejected, %s",
        blast.id,
        actor,
        stats.accepted,
        stats.rejected_total,
        status.value,
    )
    if status == B.SCHEDULED:
        await publish(settings, "scheduled", blast_id=blast.id)
    return CreateResult(
        blast.id,
        status,
        stats.accepted,
        stats.rejected,
        stats.rejected_total,
        duplicates=stats.duplicates,
        quiet_note=quiet_note,
    )


#: Bytes gathered before each write of a spooled upload (one thread hop per write, not per network chunk).
SPOOL_WRITE_BYTES = 1 << 20


async def spool_to_file(chunks: AsyncIterable[bytes], *, max_bytes: int, what: str = "upload") -> Path:
    """Write a stream of bytes to a new temporary file (in TMPDIR) and return its path; memory stays flat.

    This is how a recipients CSV that arrives as a stream (an HTTP upload) reaches `create_blast`: the reader
    checks the header before it streams the rows, so it reads the start twice, and the same reader then
    imports it exactly as a file of the CLI (give `recipients_name` so that messages name the upload, not the
    temporary path). The caller deletes the file. Nothing is kept when the stream fails or passes `max_bytes`.

    Raises:
        TooLarge: the stream passed `max_bytes` (the file is deleted).
    """
    fd, name = tempfile.mkstemp(prefix="blast-upload-", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            buffer: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"{what} is larger than {max_bytes // (1 << 20)} MiB (BLAST_API_MAX_UPLOAD_MB); "
                        "split the recipients into several blasts"
                    )
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= SPOOL_WRITE_BYTES:
                    await asyncio.to_thread(out.write, b"".join(buffer))
                    buffer, buffered = [], 0
            if buffer:
                await asyncio.to_thread(out.write, b"".join(buffer))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return path


async def edit_blast(
    blast_id: int,
    *,
    settings: Settings,
    name: str | None = None,
    template: str | None = None,
    language: str | None = None,
    recipients: str | Path | None = None,
    send_at: str | None = None,
    valid_until: str | None = None,
    actor: str | None = None,
) -> CreateResult:
    """Edit a DRAFT or SCHEDULED blast: name, template, recipients (replaced whole), send time.

    Raises:
        InvalidTransition: the blast is not DRAFT or SCHEDULED.
        ValidationFailed, CsvError: as for create; nothing is changed then.
    """
    actor = actor or current_actor()
    blast = await Blast.get_or_none(id=blast_id).select_related("template")
    if blast is None:
        raise NotFound(f"blast {blast_id} does not exist")
    if B(blast.status) not in BLAST_EDITABLE:
        raise InvalidTransition(
            f"blast {blast_id} is {B(blast.status).value}; only DRAFT or SCHEDULED blasts can be edited"
        )
    if blast.due_times is not None and (send_at is not None or recipients is not None):
        raise ValidationFailed(_LOCAL_FIXED.format(id=blast_id, what="send time and recipients"))
    changes: dict[str, Any] = {}
    if name is not None:
        if not name.strip():
            raise ValidationFailed("--name must not be empty")
        changes["name"] = name.strip()
    tmpl = blast.template
    if template is not None or language is not None:
        tmpl = await approved_template(template or blast.template.name, language or blast.template.language)
        changes["template_id"] = tmpl.id
    when, until = _parse_times(send_at, valid_until, settings)
    if when is not None:
        changes["send_at"] = when
    if until is not None:
        changes["valid_until"] = until
    csv = open_csv(recipients, tmpl, blast.constants or {}, settings) if recipients is not None else None
    if csv is None and "template_id" in changes:
        # The new template must fit the recipients already stored.
        needed = set(param_keys(tmpl.components or [], tmpl.parameter_format).all_keys) - set(
            blast.constants or {}
        )
        sample = await Recipient.filter(blast_id=blast_id).first()
        missing = sorted(needed - set(sample.params if sample else {}))
        if missing:
            raise ValidationFailed(
                f"template {tmpl.name} needs {', '.join(missing)}, which blast {blast_id}'s recipients lack; "
                "give a new recipients file"
            )
    stats = _ImportStats()
    async with in_transaction() as tx:
        moved = (
            await Blast.filter(id=blast_id, status__in=list(BLAST_EDITABLE))
            .using_db(tx)
            .update(**changes, generation=F("generation") + 1, updated_at=utcnow())
        )
        if not moved:
            raise InvalidTransition(f"blast {blast_id} changed status meanwhile; it can no longer be edited")
        if csv is not None:
            await Recipient.filter(blast_id=blast_id).using_db(tx).delete()
            stats = await _import_rows(blast_id, csv, _estimate_rows(recipients or ""), tx)
            if stats.accepted == 0:
                raise CsvError(f"no usable recipients in {recipients}: {_all_rejected(stats.rejected_total)}")
            counters = {f"n_{s.value.lower()}": 0 for s in RecipientStatus} | {"n_pending": stats.accepted}
            await Blast.filter(id=blast_id).using_db(tx).update(**counters, total=stats.accepted)
        await transitions.audit(
            actor=actor,
            action="edit",
            entity="blast",
            entity_id=blast_id,
            conn=tx,
            detail={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in changes.items()}
            | ({"recipients": stats.accepted, "rejected": stats.rejected_total} if csv is not None else {}),
        )
    await publish(settings, "rescheduled", blast_id=blast_id)
    fresh = await Blast.get(id=blast_id)
    return CreateResult(blast_id, B(fresh.status), fresh.total, stats.rejected, stats.rejected_total)


# --------------------------------------------------------------------------------------------------------------
# operator actions
# --------------------------------------------------------------------------------------------------------------


async def schedule_draft(
    blast_id: int, *, settings: Settings, send_at: str | None = None, actor: str | None = None
) -> None:
    """DRAFT -> SCHEDULED (at send_at, or now)."""
    when, _ = _parse_times(send_at, None, settings)
    await transitions.transition_blast(
        blast_id,
        B.SCHEDULED,
        actor=actor or current_actor(),
        action="schedule",
        sources=[B.DRAFT],
        values={"send_at": when or utcnow(), "generation": F("generation") + 1},
    )
    await publish(settings, "scheduled", blast_id=blast_id)


async def cancel_blast(blast_id: int, *, settings: Settings, actor: str | None = None) -> int:
    """Cancel a blast: no further request leaves; its PENDING recipients become CANCELLED.

    Returns:
        How many recipients were cancelled.
    """
    actor = actor or current_actor()
    async with in_transaction() as tx:
        # Recipients first, then the blast row: the order every sender's transaction takes its locks in, so a
        # cancel racing a running chunk on PostgreSQL waits instead of deadlocking. An invalid cancel raises in
        # transition_blast and rolls the recipient moves back.
        moved = await transitions.move_recipients(blast_id, R.CANCELLED, sources=[R.PENDING], conn=tx)
        await transitions.transition_blast(
            blast_id, B.CANCELLED, actor=actor, action="cancel", conn=tx, values={"finished_at": utcnow()}
        )
    await publish(settings, "cancelled", blast_id=blast_id)
    return sum(moved.values())


async def pause_blast(
    blast_id: int, *, settings: Settings, reason: str = "paused by operator", actor: str | None = None
) -> None:
    """SCHEDULED or PROCESSING -> PAUSED."""
    await transitions.transition_blast(
        blast_id,
        B.PAUSED,
        actor=actor or current_actor(),
        action="pause",
        detail={"reason": reason},
        values={"last_error": reason},
    )
    await publish(settings, "paused", blast_id=blast_id)


async def resume_blast(blast_id: int, *, settings: Settings, actor: str | None = None) -> BlastStatus:
    """PAUSED -> PROCESSING (if it had started) or SCHEDULED (keeping a future send time, else now).

    A blast past its valid-until has its remaining recipients cancelled as expired.
    """
    actor = actor or current_actor()
    blast = await get_blast(blast_id)
    now = utcnow()
    to = B.PROCESSING if blast.started_at is not None else B.SCHEDULED
    values: dict[str, Any] = {"last_error": None, "error_code": None, "generation": F("generation") + 1}
    if to == B.SCHEDULED and (blast.send_at is None or blast.send_at < now):
        values["send_at"] = now
    async with in_transaction() as tx:
        await transitions.transition_blast(
            blast_id, to, actor=actor, action="resume", sources=[B.PAUSED], values=values, conn=tx
        )
        if blast.valid_until is not None and blast.valid_until <= now:
            await expire_pending(blast_id, blast.valid_until, conn=tx)
    await publish(settings, "resumed", blast_id=blast_id)
    return to


async def expire_pending(
    blast_id: int, valid_until: datetime, *, conn: BaseDBAsyncClient | None = None
) -> int:
    """Cancel a blast's PENDING recipients because its valid-until time has passed."""
    moved = await transitions.move_recipients(
        blast_id,
        R.CANCELLED,
        sources=[R.PENDING],
        conn=conn,
        values={"error_text": f"expired: valid until {valid_until.isoformat(timespec='seconds')}"},
    )
    n = sum(moved.values())
    if n:
        log.info("blast %s: %s recipients expired (valid until %s)", blast_id, n, valid_until.isoformat())
    return n


async def reschedule_blast(
    blast_id: int, *, settings: Settings, send_at: str, actor: str | None = None
) -> datetime:
    """Set a new send time on a DRAFT, SCHEDULED or not-yet-started PAUSED blast (it becomes SCHEDULED)."""
    actor = actor or current_actor()
    when, _ = _parse_times(send_at, None, settings)
    assert when is not None
    blast = await get_blast(blast_id)
    if blast.due_times is not None:
        raise ValidationFailed(_LOCAL_FIXED.format(id=blast_id, what="send time"))
    if blast.valid_until is not None and when >= blast.valid_until:
        raise ValidationFailed(f"--send-at is after blast {blast_id}'s valid-until time")
    if B(blast.status) == B.PAUSED and blast.started_at is not None:
        raise InvalidTransition(f"blast {blast_id} has started sending; resume it instead of rescheduling")
    values = {"send_at": when, "generation": F("generation") + 1, "last_error": None}
    if B(blast.status) == B.SCHEDULED:
        moved = await Blast.filter(id=blast_id, status=B.SCHEDULED).update(**values, updated_at=utcnow())
        if not moved:
            raise InvalidTransition(f"blast {blast_id} changed status meanwhile; try again")
        await transitions.audit(
            actor=actor,
            action="reschedule",
            entity="blast",
            entity_id=blast_id,
            detail={"send_at": when.isoformat()},
        )
    else:
        await transitions.transition_blast(
            blast_id,
            B.SCHEDULED,
            actor=actor,
            action="reschedule",
            sources=[B.DRAFT, B.PAUSED],
            values=values,
            detail={"send_at": when.isoformat()},
        )
    await publish(settings, "rescheduled", blast_id=blast_id)
    return when


@dataclass(frozen=True, slots=True)
class RetryResult:
    requeued: int
    skipped_opted_out: int
    skipped_recent_cap: int


async def retry_blast(
    blast_id: int, *, settings: Settings, include_unknown: bool = False, actor: str | None = None
) -> RetryResult:
    """Re-queue a FAILED or partly failed COMPLETED blast's retryable FAILED recipients (and UNKNOWN ones with
    include_unknown). Opted-out numbers (131050) and the per-user marketing cap (131049) within 24 h stay FAILED.
    """
    actor = actor or current_actor()
    blast = await get_blast(blast_id)
    if B(blast.status) not in (B.FAILED, B.COMPLETED):
        raise InvalidTransition(
            f"blast {blast_id} is {B(blast.status).value}; only FAILED or partly failed COMPLETED blasts can be retried"
        )
    # Lazy import: the purge service is an operations add-on of this module's data.
    from shared.services.purge import PURGED_PREFIX

    if await Recipient.filter(blast_id=blast_id, phone__startswith=PURGED_PREFIX).exists():
        raise InvalidTransition(
            f"blast {blast_id}: its recipients' phone numbers were purged (blast-daemon purge); "
            "it cannot be retried: create a new blast from the original CSV"
        )
    cutoff = utcnow() - timedelta(hours=meta_errors.MARKETING_CAP_RESEND_H)
    base = Recipient.filter(blast_id=blast_id, status=R.FAILED)
    opted = await base.filter(error_code__in=list(NEVER_RETRY_CODES)).count()
    capped = await base.filter(error_code=MARKETING_CAP_CODE, failed_at__gt=cutoff).count()
    # Suppressed numbers are re-queued too: the sender skips them (SKIPPED), which is what the operator sees.
    retry_filter = (
        Q(error_code__isnull=True)
        | ~Q(error_code__in=[*NEVER_RETRY_CODES, MARKETING_CAP_CODE])
        | Q(error_code=MARKETING_CAP_CODE, failed_at__lte=cutoff)
    )
    async with in_transaction() as tx:
        ids = cast(
            list[int],
            await Recipient.filter(blast_id=blast_id, status=R.FAILED)
            .filter(retry_filter)
            .using_db(tx)
            .values_list("id", flat=True),
        )
        sources = [R.UNKNOWN] if include_unknown else []
        total = 0
        for start in range(0, len(ids), 5000):
            moved = await transitions.move_recipients(
                blast_id,
                R.PENDING,
                sources=[R.FAILED],
                ids=list(ids[start : start + 5000]),
                conn=tx,
                values={"next_attempt_at": None},
            )
            total += sum(moved.values())
        if sources:
            moved = await transitions.move_recipients(
                blast_id, R.PENDING, sources=sources, conn=tx, values={"next_attempt_at": None}
            )
            total += sum(moved.values())
        if total == 0:
            raise InvalidTransition(
                f"blast {blast_id} has nothing to retry"
                + (
                    ""
                    if include_unknown or not blast.n_unknown
                    else f" ({blast.n_unknown} UNKNOWN: add --include-unknown)"
                )
            )
        await transitions.transition_blast(
            blast_id,
            B.PROCESSING,
            actor=actor,
            action="retry",
            sources=[B.FAILED, B.COMPLETED],
            conn=tx,
            values={
                "finished_at": None,
                "last_error": None,
                "error_code": None,
                "generation": F("generation") + 1,
            },
            detail={"requeued": total, "include_unknown": include_unknown},
        )
    await publish(settings, "resumed", blast_id=blast_id)
    return RetryResult(total, opted, capped)


async def pause_all(
    *, settings: Settings, reason: str = "emergency stop", actor: str | None = None
) -> list[int]:
    """Emergency stop: pause every SCHEDULED or PROCESSING blast at once. Returns the ids paused."""
    actor = actor or current_actor()
    ids = cast(
        list[int], await Blast.filter(status__in=[B.SCHEDULED, B.PROCESSING]).values_list("id", flat=True)
    )
    paused: list[int] = []
    for blast_id in ids:
        try:
            if await transitions.transition_blast(
                blast_id,
                B.PAUSED,
                actor=actor,
                action="stop-all",
                detail={"reason": reason},
                values={"last_error": reason},
            ):
                paused.append(blast_id)
        except InvalidTransition:
            continue
    await publish(settings, "stop_all", blast_ids=paused)
    return paused


async def resume_all(*, settings: Settings, actor: str | None = None) -> list[int]:
    """Resume every blast paused by the emergency stop."""
    ids = cast(
        list[int],
        await Blast.filter(status=B.PAUSED, last_error="emergency stop").values_list("id", flat=True),
    )
    resumed = []
    for blast_id in ids:
        try:
            await resume_blast(blast_id, settings=settings, actor=actor)
            resumed.append(blast_id)
        except InvalidTransition:
            continue
    return resumed


async def count_blasts(*, statuses: Sequence[BlastStatus] | None = None, text: str | None = None) -> int:
    """How many blasts `list_blasts` would page through with these filters."""
    query = Blast.all()
    if statuses:
        query = query.filter(status__in=list(statuses))
    if text:
        query = query.filter(Q(name__icontains=text) | Q(template__name__icontains=text))
    return await query.count()
