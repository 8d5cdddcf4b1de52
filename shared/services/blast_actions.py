"""Provides the operator's actions on blasts: schedule a draft, cancel, pause, resume (one or all), reschedule,
expire what passed its valid-until time, and retry the failed or unknown recipients."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from shared.actors import current_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import InvalidTransition, ValidationFailed
from shared.events import publish
from shared.models import Blast, Recipient
from shared.parsing.quiet import parse_quiet_hours
from shared.services import transitions
from shared.services.blast_reads import get_blast
from shared.services.blast_schedule import Scheduled, schedule_quiet_draft
from shared.services.blasts import LOCAL_FIXED, parse_times
from shared.status import BlastStatus, RecipientStatus
from shared.whatsapp import errors as meta_errors

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus


#: Error codes a retry never re-queues: the user opted out (131050).
NEVER_RETRY_CODES = meta_errors.NEVER_RETRY_CODES


#: Per-user marketing cap: retrying within 24 h just fails again (Meta).
MARKETING_CAP_CODE = meta_errors.MARKETING_CAP


async def schedule_draft(
    blast_id: int, *, settings: Settings, send_at: str | None = None, actor: str | None = None
) -> Scheduled:
    """DRAFT -> SCHEDULED (at send_at, or now); a draft's quiet hours set its recipients' due times then.

    Raises:
        ValidationFailed: a bad send time, or its valid-until time is before it (or before some recipients'
            end of quiet hours).
        InvalidTransition: the blast is not a DRAFT.
    """
    actor = actor or current_actor()
    when, _ = parse_times(send_at, None, settings)
    when = when or utcnow()
    blast = await get_blast(blast_id)
    if blast.valid_until is not None and when >= blast.valid_until:
        raise ValidationFailed(f"--send-at is after blast {blast_id}'s valid-until time")
    quiet = parse_quiet_hours(blast.quiet_hours)
    if quiet is not None and B(blast.status) == B.DRAFT:
        done = await schedule_quiet_draft(
            blast, when, quiet, settings=settings, actor=actor, action="schedule"
        )
    else:
        await transitions.transition_blast(
            blast_id,
            B.SCHEDULED,
            actor=actor,
            action="schedule",
            sources=[B.DRAFT],
            values={"send_at": when, "generation": F("generation") + 1},
        )
        done = Scheduled(when)
    await publish(settings, "scheduled", blast_id=blast_id)
    return done


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

    The due groups of a local-time blast whose time has come are sent now, whatever their lateness.

    A blast past its valid-until has its remaining recipients cancelled as expired.
    """
    actor = actor or current_actor()
    blast = await get_blast(blast_id)
    now = utcnow()
    to = B.PROCESSING if blast.started_at is not None else B.SCHEDULED
    values: dict[str, Any] = {"last_error": None, "error_code": None, "generation": F("generation") + 1}
    if to == B.SCHEDULED and (blast.send_at is None or blast.send_at < now):
        values["send_at"] = now
    if blast.due_times is not None:
        # The operator sends the due groups now, however late (they are not "missed" again): see blast_lifecycle.
        values["accepted_due_at"] = now
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
) -> Scheduled:
    """Set a new send time on a DRAFT, SCHEDULED or not-yet-started PAUSED blast (it becomes SCHEDULED); a
    draft's quiet hours set its recipients' due times then (`quiet_note` says who will wait)."""
    actor = actor or current_actor()
    when, _ = parse_times(send_at, None, settings)
    assert when is not None
    blast = await get_blast(blast_id)
    if blast.due_times is not None:
        raise ValidationFailed(LOCAL_FIXED.format(id=blast_id, what="send time"))
    if blast.valid_until is not None and when >= blast.valid_until:
        raise ValidationFailed(f"--send-at is after blast {blast_id}'s valid-until time")
    if B(blast.status) == B.PAUSED and blast.started_at is not None:
        raise InvalidTransition(f"blast {blast_id} has started sending; resume it instead of rescheduling")
    quiet = parse_quiet_hours(blast.quiet_hours)
    if quiet is not None and B(blast.status) == B.DRAFT:
        done = await schedule_quiet_draft(
            blast, when, quiet, settings=settings, actor=actor, action="reschedule"
        )
        await publish(settings, "rescheduled", blast_id=blast_id)
        return done
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
    return Scheduled(when)


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
