"""Provides creating a blast (from a recipients CSV: its template, times, zones and quiet hours, sender pool)
and editing a draft or scheduled one. The CSV engine is `blast_import`; reading blasts is `blast_reads`; the
operator's actions (cancel, pause, resume, retry, reschedule) are `blast_actions`. Each change is a validated
transition recorded in the audit log with the acting user.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from shared.actors import current_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import CsvError, InvalidTransition, NotFound, ValidationFailed
from shared.events import publish
from shared.models import Blast, Recipient, Template
from shared.parsing.quiet import QuietHours, parse_quiet_hours, quiet_wait
from shared.parsing.send_at import parse_when, require_future
from shared.parsing.template_params import param_keys
from shared.parsing.zones import ZoneResolver, parse_zone, zone_of
from shared.services import transitions
from shared.services.blast_import import (
    ZONE_COLUMN,
    ImportStats,
    Rejected,
    all_rejected,
    estimate_rows,
    import_rows,
    open_csv,
)
from shared.services.senders import resolve_pool as sender_pool
from shared.status import BLAST_EDITABLE, BlastStatus, RecipientStatus, TemplateStatus

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus


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


LOCAL_FIXED = (
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


def parse_times(
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


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What the time options of a new blast mean (create, and the create form's preview)."""

    #: Local-time blasts: the naive wall-clock time each recipient gets in its zone.
    wall: datetime | None
    #: The send time given (None: now, a draft without one, or a local-time blast).
    when: datetime | None
    until: datetime | None
    #: The zone of recipients whose zone is not known (a `parse_zone` name).
    default_zone: str
    quiet: QuietHours | None


def send_plan(
    settings: Settings,
    *,
    send_at: str | None,
    valid_until: str | None = None,
    local_time: bool = False,
    timezone: str | None = None,
    quiet_hours: str | None = None,
    draft: bool = False,
) -> SendPlan:
    """Check and read the time options of a new blast (quiet hours: `quiet_hours`, "off", else
    BLAST_QUIET_HOURS).

    Raises:
        ValidationFailed: one line naming the option.
    """
    if local_time and draft:
        raise ValidationFailed("--local-time blasts cannot be drafts: give --send-at and leave out --draft")
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
    wall = _local_send_at(send_at) if local_time else None
    when, until = parse_times(None if local_time else send_at, valid_until, settings)
    return SendPlan(wall, when, until, default_zone, quiet)


def quiet_note(zones: ZoneResolver, counts: Iterable[tuple[str, int]], settings: Settings) -> str | None:
    """ "about 3,200 recipients will wait until 08:00 WITA" for a blast's recipients counted per zone (zone,
    recipients), sent at BLAST_RATE_LIMIT from each zone's time before quiet hours (`zones.intended`): a zone
    whose time falls inside its window waits whole, and one still sending when its window starts leaves the rest
    waiting. None when nobody is expected to wait. One estimate for create, the create form's preview and
    scheduling a draft."""
    if zones.quiet is None:
        return None
    groups: list[tuple[datetime, str, int]] = []
    for zone, n in counts:
        start = zones.intended(zone)
        if start is not None and n:
            groups.append((start, zone, n))
    return quiet_wait(groups, settings.BLAST_RATE_LIMIT, zones.quiet, zone_of).line()


async def stored_quiet_note(
    blast_id: int, zones: ZoneResolver, settings: Settings, conn: BaseDBAsyncClient | None = None
) -> str | None:
    """`quiet_note` for the recipients of a blast whose zones are written."""
    counts = await (
        Recipient.filter(blast_id=blast_id)
        .using_db(conn)
        .annotate(n=Count("id"))
        .group_by("zone")
        .values_list("zone", "n")
    )
    return quiet_note(zones, ((str(z), int(n)) for z, n in counts if z is not None), settings)


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

    With quiet hours (`quiet_hours` "21:00-08:00", "off" for none, else BLAST_QUIET_HOURS) a recipient whose
    local time at its send time is inside the window is due when the window ends in its zone. A draft keeps
    them (and its recipients' zones) until it is scheduled, which sets the due times.

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
    tmpl = await approved_template(template, language)
    plan = send_plan(
        settings,
        send_at=send_at,
        valid_until=valid_until,
        local_time=local_time,
        timezone=timezone,
        quiet_hours=quiet_hours,
        draft=draft,
    )
    wall, when, until, default_zone, quiet = plan.wall, plan.when, plan.until, plan.default_zone, plan.quiet
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
            stats = await import_rows(blast.id, csv, estimate_rows(recipients), tx, zones)
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
            elif quiet is not None and draft:
                # A draft keeps its quiet hours and its recipients' zones; their due times are set when it is
                # scheduled (blast_schedule), from its send time then.
                local = {"timezone": default_zone}
            elif quiet is not None and zones is not None and stats.accepted:
                due_times = zones.due_times()
                if until is not None and until <= due_times[-1]:
                    raise ValidationFailed(
                        f"--valid-until is before the end of the quiet hours ({quiet}) of some recipients"
                    )
                local = {"timezone": default_zone, "due_times": [t.isoformat() for t in due_times]}
            note = None
            if quiet is not None and local:
                local["quiet_hours"] = str(quiet)
                if not draft and zones is not None:
                    note = await stored_quiet_note(blast.id, zones, settings, tx)
            if stats.accepted == 0:
                raise CsvError(
                    f"no usable recipients in {shown}: {all_rejected(stats.rejected_total)}"
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
        quiet_note=note,
    )


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
    quiet_hours: str | None = None,
) -> CreateResult:
    """Edit a DRAFT or SCHEDULED blast: name, template, recipients (replaced whole), send time; and a draft's
    quiet hours (`quiet_hours` "21:00-08:00" or "off"; applied when it is scheduled).

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
        raise ValidationFailed(LOCAL_FIXED.format(id=blast_id, what="send time and recipients"))
    changes: dict[str, Any] = {}
    quiet = parse_quiet_hours(blast.quiet_hours)
    if quiet_hours is not None:
        if B(blast.status) != B.DRAFT:
            raise ValidationFailed(
                f"blast {blast_id} is {B(blast.status).value}; quiet hours can be changed on a DRAFT only "
                "(they apply when it is scheduled)"
            )
        try:
            quiet = parse_quiet_hours(quiet_hours, name="--quiet-hours")
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        changes["quiet_hours"] = None if quiet is None else str(quiet)
        if quiet is not None and not blast.timezone:
            changes["timezone"] = settings.BLAST_TIMEZONE
    if name is not None:
        if not name.strip():
            raise ValidationFailed("--name must not be empty")
        changes["name"] = name.strip()
    tmpl = blast.template
    if template is not None or language is not None:
        tmpl = await approved_template(template or blast.template.name, language or blast.template.language)
        changes["template_id"] = tmpl.id
    when, until = parse_times(send_at, valid_until, settings)
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
    stats = ImportStats()
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
            # A draft with quiet hours keeps its recipients' zones, as create does.
            zones = (
                ZoneResolver(None, changes.get("timezone") or blast.timezone or settings.BLAST_TIMEZONE)
                if quiet is not None
                else None
            )
            stats = await import_rows(blast_id, csv, estimate_rows(recipients or ""), tx, zones)
            if stats.accepted == 0:
                raise CsvError(f"no usable recipients in {recipients}: {all_rejected(stats.rejected_total)}")
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
