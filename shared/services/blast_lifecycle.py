"""Provides a blast's life in the daemon: which blasts are due and when the next one is, starting a due blast
(or pausing / expiring it when its schedule was missed), the missed-schedule check of each later due group of a
running local-time blast, pausing it on a blast-fatal error, expiring what its valid-until time passed, and
finishing it.

Due groups (local-time and quiet-hours blasts): `Blast.accepted_due_at` is the latest due time whose group may be
sent however late. Starting the blast accepts every group already due (the blast-wide cutoff was checked); a later
group is accepted by the first daemon that sees its time come within BLAST_MISSED_CUTOFF (the scheduler at that
time, or a running chunk), and a resume accepts every group already due. A group still unaccepted more than the
cutoff after its time (every daemon was down across it) pauses the blast with a reason naming the group, instead
of going out hours late. Chunks claim only accepted groups. Accepting and pausing are conditional UPDATEs on the
same row, so exactly one of them wins for a group, in one daemon.

How a blast ends (the daemon calls `finish_if_done` once no recipient is PENDING or SENDING):

- COMPLETED: at least one recipient was accepted by Meta (SENT, DELIVERED or READ), or none was attempted at
  all (everything SKIPPED, CANCELLED as expired …). A COMPLETED blast with FAILED or UNKNOWN recipients is
  "COMPLETED with failures": the operator can retry it.
- FAILED: not one recipient was accepted by Meta and at least one is FAILED or UNKNOWN. `last_error` names the
  most common error.

Blast-fatal errors (token, account, template …) never fail a blast: they pause it with the cause and the fix,
because the operator can repair them and resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from shared import metrics
from shared.clock import utcnow
from shared.errors import InvalidTransition
from shared.models import Blast, Recipient
from shared.parsing.zones import zone_of
from shared.services import transitions
from shared.services.blast_actions import expire_pending
from shared.services.claims import blast_status, parse_due_times
from shared.status import BlastStatus, RecipientStatus
from shared.text import duration, plural

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """What happened to a due SCHEDULED blast: `started`, `missed` (paused), `expired` (rest cancelled) or
    `lost` (another daemon claimed it, or it changed meanwhile)."""

    kind: str
    blast_id: int
    lateness_s: float
    pending: int = 0


async def due_blasts(now: datetime, *, limit: int = 100) -> list[int]:
    """SCHEDULED blasts whose send time has come, earliest first."""
    rows: list[Any] = (
        await Blast.filter(status=B.SCHEDULED, send_at__lte=now)
        .order_by("send_at", "id")
        .limit(limit)
        .values_list("id", flat=True)
    )
    return [int(r) for r in rows]


async def next_send_at() -> datetime | None:
    """The earliest send time of a SCHEDULED blast."""
    rows = (
        await Blast.filter(status=B.SCHEDULED, send_at__isnull=False)
        .order_by("send_at")
        .limit(1)
        .values_list("send_at", flat=True)
    )
    return rows[0] if rows else None  # type: ignore[return-value]


async def start_due_blast(blast_id: int, *, missed_cutoff_s: float, actor: str) -> StartOutcome:
    """Claim a due SCHEDULED blast for sending (one conditional UPDATE; one daemon wins).

    A blast past its valid-until has its PENDING recipients cancelled as expired (then it finishes); one that
    missed its send time by more than `missed_cutoff_s` is PAUSED with the reason; otherwise it becomes
    PROCESSING.
    """
    now = utcnow()
    blast = await Blast.get_or_none(id=blast_id)
    if blast is None or B(blast.status) != B.SCHEDULED or blast.send_at is None or blast.send_at > now:
        return StartOutcome("lost", blast_id, 0.0)
    late_s = (now - blast.send_at).total_seconds()
    try:
        if blast.valid_until is not None and blast.valid_until <= now:
            async with in_transaction() as tx:
                won = await transitions.transition_blast(
                    blast_id,
                    B.PROCESSING,
                    actor=actor,
                    action="start",
                    sources=[B.SCHEDULED],
                    conn=tx,
                    values={"started_at": blast.started_at or now},
                    detail={"expired": blast.valid_until.isoformat()},
                )
                if not won:
                    return StartOutcome("lost", blast_id, late_s)
                await expire_pending(blast_id, blast.valid_until, conn=tx)
            await finish_if_done(blast_id, actor=actor)
            return StartOutcome("expired", blast_id, late_s)
        if late_s > missed_cutoff_s:
            reason = (
                f"missed its send time by {duration(late_s)} (more than BLAST_MISSED_CUTOFF, "
                f"{duration(missed_cutoff_s)}): resume to send it now, or cancel it"
            )
            won = await transitions.transition_blast(
                blast_id,
                B.PAUSED,
                actor=actor,
                action="pause",
                sources=[B.SCHEDULED],
                values={"last_error": reason},
                detail={"reason": reason},
            )
            if won:
                log.warning("blast %s paused: %s", blast_id, reason)
            return StartOutcome("missed" if won else "lost", blast_id, late_s)
        values: dict[str, Any] = {"started_at": blast.started_at or now}
        # The groups already due are no later than the blast's first, which is within the cutoff.
        accepted = max((t for t in parse_due_times(blast.due_times) if t <= now), default=None)
        if accepted is not None:
            values["accepted_due_at"] = accepted
        won = await transitions.transition_blast(
            blast_id,
            B.PROCESSING,
            actor=actor,
            action="start",
            sources=[B.SCHEDULED],
            values=values,
            detail={"lateness_s": round(late_s, 3)},
        )
    except InvalidTransition:
        return StartOutcome("lost", blast_id, late_s)
    if not won:
        return StartOutcome("lost", blast_id, late_s)
    log.info(
        "blast %s SCHEDULED -> PROCESSING (%s recipients pending, %.3f s after its send time)",
        blast_id,
        blast.n_pending,
        late_s,
    )
    return StartOutcome("started", blast_id, late_s, blast.n_pending)


@dataclass(frozen=True, slots=True)
class DueCheck:
    """What `check_due_groups` found: the groups up to `accepted_due_at` may be claimed (None: none yet);
    `sendable` is False when the blast is not PROCESSING (any more); `paused` when this call paused it."""

    accepted_due_at: datetime | None
    sendable: bool = True
    paused: bool = False


async def check_due_groups(
    blast_id: int, *, missed_cutoff_s: float, actor: str, now: datetime | None = None
) -> DueCheck:
    """Accept the due groups of a PROCESSING due-time blast whose time has come, or pause the blast when one of them
    missed its time by more than `missed_cutoff_s` (see the module doc). Cheap when nothing new is due: one read.

    A group with nothing PENDING left is never missed, nor is anything once the
    blast's valid-until passed (its rest expires instead).
    """
    now = now or utcnow()
    rows = await Blast.filter(id=blast_id).values_list(
        "status", "due_times", "accepted_due_at", "valid_until"
    )
    if not rows:
        return DueCheck(None, sendable=False)
    status, raw, accepted, valid_until = rows[0]
    if B(status) != B.PROCESSING:
        return DueCheck(accepted, sendable=False)
    due = [t for t in parse_due_times(raw) if t <= now and (accepted is None or t > accepted)]
    if not due:
        return DueCheck(accepted)
    late = [t for t in due if (now - t).total_seconds() > missed_cutoff_s]
    if late and (valid_until is None or valid_until > now):
        missed = await _pending_groups(blast_id, late)
        if missed:
            reason = _missed_reason(missed, now, missed_cutoff_s)
            first_due, _, first_n = missed[0]
            won = await _pause_running(
                blast_id,
                actor=actor,
                values={"last_error": reason},
                detail={"reason": reason, "missed_due_at": first_due.isoformat(), "recipients": first_n},
                where=_unaccepted(first_due),
            )
            if won:
                log.warning("blast %s paused: %s", blast_id, reason)
                return DueCheck(accepted, sendable=False, paused=True)
            return await _reread_check(blast_id)  # another daemon accepted the group, or paused the blast
    moved = await Blast.filter(_unaccepted(due[-1]), id=blast_id, status=B.PROCESSING).update(
        accepted_due_at=due[-1]
    )
    if moved:
        log.info(
            "blast %s: due group of %s accepted, %.3f s after its time",
            blast_id,
            due[-1].isoformat(timespec="seconds"),
            (now - due[-1]).total_seconds(),
        )
        return DueCheck(due[-1])
    return await _reread_check(blast_id)


def _unaccepted(due: datetime) -> Q:
    return Q(accepted_due_at__isnull=True) | Q(accepted_due_at__lt=due)


async def _reread_check(blast_id: int) -> DueCheck:
    rows = await Blast.filter(id=blast_id).values_list("status", "accepted_due_at")
    if not rows:
        return DueCheck(None, sendable=False)
    return DueCheck(rows[0][1], sendable=B(rows[0][0]) == B.PROCESSING)


async def _pending_groups(blast_id: int, due_times: list[datetime]) -> list[tuple[datetime, str | None, int]]:
    """(due time, its largest zone, PENDING recipients) of those due groups that still have any (recipient_due)."""
    out: list[tuple[datetime, str | None, int]] = []
    for due in due_times:
        rows = await (
            Recipient.filter(blast_id=blast_id, due_at=due, status=R.PENDING)
            .annotate(n=Count("id"))
            .group_by("zone")
            .values_list("zone", "n")
        )
        if rows:
            zone, _ = max(rows, key=lambda r: (int(r[1]), str(r[0])))
            out.append((due, None if zone is None else str(zone), sum(int(n) for _, n in rows)))
    return out


def _group_name(due: datetime, zone: str | None) -> str:
    """ "the 09:00 WITA group": the group's due time on its zone's wall clock."""
    when = due if zone is None else due.astimezone(zone_of(zone))
    return f"the {when.strftime('%H:%M %Z').strip()} group"


def _missed_reason(missed: list[tuple[datetime, str | None, int]], now: datetime, cutoff_s: float) -> str:
    due, zone, n = missed[0]
    text = f"{_group_name(due, zone)} ({plural(n, 'recipient')}) missed its send time by {duration((now - due).total_seconds())}"
    if len(missed) > 1:
        more = sum(g[2] for g in missed[1:])
        text += f", and {plural(len(missed) - 1, 'later group')} ({plural(more, 'recipient')}) too"
    them = "them" if len(missed) > 1 else "it"
    return f"{text} (more than BLAST_MISSED_CUTOFF, {duration(cutoff_s)}): resume to send {them} now, or cancel it"


async def _pause_running(
    blast_id: int,
    *,
    actor: str,
    values: dict[str, Any],
    detail: dict[str, Any],
    where: Q | None = None,
) -> bool:
    """PROCESSING -> PAUSED by the daemon (False: no longer PROCESSING, or `where` did not hold)."""
    try:
        return await transitions.transition_blast(
            blast_id,
            B.PAUSED,
            actor=actor,
            action="pause",
            sources=[B.PROCESSING],
            values=values,
            detail=detail,
            where=where,
        )
    except InvalidTransition:
        return False


async def pause_for_error(blast_id: int, *, reason: str, code: int | None, actor: str) -> bool:
    """PROCESSING -> PAUSED because of an error every other recipient would hit too (reason names the fix).

    Returns:
        True if this call paused the blast (False: it was no longer PROCESSING).
    """
    won = await _pause_running(
        blast_id,
        actor=actor,
        values={"last_error": reason, "error_code": code},
        detail={"reason": reason, "code": code},
    )
    if won:
        log.error("blast %s paused: %s", blast_id, reason)
        metrics.BLASTS_PAUSED_BY_ERROR.inc()  # the "blast paused by a fatal error" alert
    return won


async def expire_if_due(blast_id: int) -> int:
    """Cancel a PROCESSING blast's PENDING recipients if its valid-until has passed (then it can finish)."""
    blast = await Blast.get_or_none(id=blast_id)
    if blast is None or blast.valid_until is None or blast.valid_until > utcnow():
        return 0
    return await expire_pending(blast_id, blast.valid_until)


async def _most_common_error(blast_id: int) -> str | None:
    rows = await (
        Recipient.filter(blast_id=blast_id, status=R.FAILED)
        .annotate(n=Count("id"))
        .group_by("error_code")
        .order_by("-n")
        .limit(1)
        .values_list("error_code", "n")
    )
    if not rows:
        return None
    code, n = rows[0]
    sample = (
        await Recipient.filter(blast_id=blast_id, status=R.FAILED, error_code=code)
        .first()
        .values_list("error_text", flat=True)
    )
    return f"{n} x {sample or ('code ' + str(code))}"


async def finish_if_done(blast_id: int, *, actor: str) -> BlastStatus | None:
    """Finish a PROCESSING blast with nothing PENDING or SENDING left: COMPLETED or FAILED (see module doc).

    Returns:
        The new status, or None when the blast is not finished (or another daemon finished it).
    """
    blast = await Blast.get_or_none(id=blast_id)
    if blast is None or B(blast.status) != B.PROCESSING or blast.n_pending or blast.n_sending:
        return None
    accepted = blast.n_sent + blast.n_delivered + blast.n_read
    bad = blast.n_failed + blast.n_unknown
    now = utcnow()
    values: dict[str, Any] = {"finished_at": now}
    if accepted == 0 and bad > 0:
        to = B.FAILED
        common = await _most_common_error(blast_id)
        values["last_error"] = (
            f"no recipient could be sent: {blast.n_failed} failed, {blast.n_unknown} unknown"
            + (f"; most common: {common}" if common else "")
        )[:2000]
    else:
        to = B.COMPLETED
        if blast.n_cancelled and blast.valid_until is not None and blast.valid_until <= now:
            values["last_error"] = (
                f"expired: valid until {blast.valid_until.isoformat(timespec='seconds')}; "
                f"{plural(blast.n_cancelled, 'recipient', grouped=False)} "
                f"{'was' if blast.n_cancelled == 1 else 'were'} not sent"
            )
    try:
        won = await transitions.transition_blast(
            blast_id,
            to,
            actor=actor,
            action="finish",
            sources=[B.PROCESSING],
            values=values,
            detail={"counts": blast.counts()},
        )
    except InvalidTransition:
        return None
    if not won:
        return None
    log.info(
        "blast %s PROCESSING -> %s (sent %s, failed %s, unknown %s, skipped %s, cancelled %s of %s)",
        blast_id,
        to.value,
        accepted,
        blast.n_failed,
        blast.n_unknown,
        blast.n_skipped,
        blast.n_cancelled,
        blast.total,
    )
    return to


async def cancel_leftovers(blast_id: int) -> int:
    """PENDING -> CANCELLED in a blast that was cancelled (rows put back by chunks after the cancel)."""
    if await blast_status(blast_id) != B.CANCELLED:
        return 0
    moved = await transitions.move_recipients(
        blast_id, R.CANCELLED, sources=[R.PENDING], values={"lease_owner": None, "lease_expires_at": None}
    )
    return sum(moved.values())


@dataclass(frozen=True, slots=True)
class ActiveBlast:
    id: int
    n_pending: int
    n_sending: int


async def processing_blasts() -> list[ActiveBlast]:
    rows = await Blast.filter(status=B.PROCESSING).values_list("id", "n_pending", "n_sending")
    return [ActiveBlast(int(i), int(p), int(s)) for i, p, s in rows]
