"""Provides the database side of sending blasts: starting due blasts, claiming pages of recipients under a
lease, marking them SENDING, finishing blasts, pausing them on errors, and recovering the leases of dead
daemons.

How a blast ends (the daemon calls `finish_if_done` once no recipient is PENDING or SENDING):

- COMPLETED: at least one recipient was accepted by Meta (SENT, DELIVERED or READ), or none was attempted at
  all
  (everything SKIPPED, CANCELLED as expired …). A COMPLETED blast with FAILED or UNKNOWN recipients is
  "COMPLETED with failures": the operator can retry it.
- FAILED: not one recipient was accepted by Meta and at least one is FAILED or UNKNOWN. `last_error` names the
  most common error.

Blast-fatal errors (token, account, template …) never fail a blast: they pause it with the cause and the fix,
because the operator can repair them and resume.

Leases: a claimed page of PENDING recipients carries `lease_owner` = the chunk's token ("<daemon id>/<chunk>")
and a short `lease_expires_at`; a recipient is marked SENDING only by the holder of its lease, right before
its request, and its result is written only while that lease holds. The token's daemon id (host:pid:nonce) lets
any daemon recognise the leases of a dead one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from shared import metrics
from shared.errors import InvalidTransition
from shared.models import Blast, Recipient
from shared.parsing.quiet import QuietHours, parse_quiet_hours
from shared.parsing.zones import zone_of
from shared.services import transitions
from shared.services.blasts import expire_pending
from shared.services.transitions import utcnow
from shared.status import BlastStatus, RecipientStatus
from shared.text import plural

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus

#: A claimed-but-not-yet-sent PENDING recipient is free again after this long, whatever happened to its chunk.
PENDING_LEASE_S = 20.0
#: A SENDING recipient's lease outlives its request (timeout) by this much; after that it becomes UNKNOWN.
SENDING_LEASE_GRACE_S = 60.0


# ------------------------------------------------------------------------------------------------------------
# callback data
# ------------------------------------------------------------------------------------------------------------


def callback_data(blast_id: int, recipient_id: int, attempt: int) -> str:
    """The `biz_opaque_callback_data` of a send: names the blast, the recipient and the attempt."""
    return f"blast={blast_id};rcpt={recipient_id};try={attempt}"


def parse_callback_data(value: str | None) -> tuple[int, int, int] | None:
    """(blast_id, recipient_id, attempt) from a `biz_opaque_callback_data` written by `callback_data`."""
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, _, val = part.partition("=")
        fields[key.strip()] = val.strip()
    try:
        return int(fields["blast"]), int(fields["rcpt"]), int(fields.get("try", "0"))
    except (KeyError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------------------
# what a chunk needs to know about its blast
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlastPlan:
    id: int
    status: BlastStatus
    template: str
    language: str
    category: str
    parameter_format: str
    components: list[dict[str, Any]]
    constants: dict[str, str]
    valid_until: datetime | None
    generation: int
    #: Local-time blasts: the distinct due times of its recipients, earliest first (empty: all due at once).
    due_times: tuple[datetime, ...] = ()
    #: Quiet hours (each recipient's local time) in which nothing is sent to it (None: off).
    quiet: QuietHours | None = None


def parse_due_times(raw: Any) -> tuple[datetime, ...]:
    """The due times stored in Blast.due_times (UTC ISO strings), earliest first."""
    return tuple(sorted(datetime.fromisoformat(str(t)) for t in (raw or ())))


async def load_plan(blast_id: int) -> BlastPlan | None:
    """The blast and its template, or None when the blast does not exist."""
    blast = await Blast.get_or_none(id=blast_id).select_related("template")
    if blast is None:
        return None
    tmpl = blast.template
    return BlastPlan(
        id=blast.id,
        status=B(blast.status),
        template=tmpl.name,
        language=tmpl.language,
        category=tmpl.category,
        parameter_format=tmpl.parameter_format,
        components=list(tmpl.components or []),
        constants={str(k): str(v) for k, v in (blast.constants or {}).items()},
        valid_until=blast.valid_until,
        generation=blast.generation,
        due_times=parse_due_times(blast.due_times),
        quiet=parse_quiet_hours(blast.quiet_hours),
    )


async def blast_status(blast_id: int) -> BlastStatus | None:
    rows = await Blast.filter(id=blast_id).values_list("status", flat=True)
    return B(rows[0]) if rows else None


# ------------------------------------------------------------------------------------------------------------
# claiming and marking
# ------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)  # one per message: a frozen dataclass's __init__ costs 3x as much (treat as immutable)
class ClaimedRecipient:
    id: int
    phone: str
    params: dict[str, Any]
    attempts: int
    error_code: int | None
    #: The recipient's zone (due-time blasts only).
    zone: str | None = None


def _claimable(now: datetime) -> Q:
    return (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


_CLAIM = """
UPDATE recipient SET lease_owner = {p[0]}, lease_expires_at = {p[1]}
WHERE id IN (
    SELECT id FROM recipient
    WHERE blast_id = {p[2]} AND status = 'PENDING' AND id > {p[5]}
      AND (lease_expires_at IS NULL OR lease_expires_at < {p[3]})
      AND (next_attempt_at IS NULL OR next_attempt_at <= {p[3]})
    ORDER BY id LIMIT {p[4]}{lock}
)
RETURNING id, phone, params, attempts, error_code
"""
_CLAIM_PG = _CLAIM.format(p=["$1", "$2", "$3", "$4", "$5", "$6"], lock=" FOR UPDATE SKIP LOCKED")
_CLAIM_SQLITE = _CLAIM.format(p=["?1", "?2", "?3", "?4", "?5", "?6"], lock="")


async def claim_page(
    blast_id: int, token: str, size: int, *, lease_s: float = PENDING_LEASE_S, after_id: int = 0
) -> list[ClaimedRecipient]:
    """Lease up to `size` claimable PENDING recipients of a blast to `token` (their status does not change).

    A recipient is claimable when it is PENDING, due (next_attempt_at passed) and not leased (or its lease
    expired). One statement selects and leases them, so two claimers never hold the same row (on PostgreSQL
    the selection skips rows another claimer is locking; SQLite has one writer at a time).

    Args:
        after_id: claim only ids above this one (a sender's cursor: the index range of rows it already moved
            on is not walked again; a claim from 0 finds the rows due for a retry or released).

    Returns:
        The recipients now leased to `token`, in id order.
    """
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    if pg:  # execute_query would not fetch the RETURNING rows of a statement that starts with UPDATE
        rows = await conn.execute_query_dict(_CLAIM_PG, [token, until, blast_id, now, size, after_id])
    else:
        sqlite_now = now.isoformat(" ")  # tortoise stores datetimes so on SQLite; compared as text
        _, rows = await conn.execute_query(
            _CLAIM_SQLITE, [token, until.isoformat(" "), blast_id, sqlite_now, size, after_id]
        )
    loads = json.loads
    out = [
        ClaimedRecipient(
            id=int(r["id"]),
            phone=r["phone"],
            params=(loads(r["params"]) if isinstance(r["params"], str | bytes) else r["params"]) or {},
            attempts=int(r["attempts"]),
            error_code=r["error_code"],
        )
        for r in rows
    ]
    out.sort(key=lambda c: c.id)
    return out


#: A local-time blast's claim: one due group's pending rows, by the partial index recipient_due (0007).
_CLAIM_DUE = """
UPDATE recipient SET lease_owner = {p[0]}, lease_expires_at = {p[1]}
WHERE id IN (
    SELECT id FROM recipient
    WHERE blast_id = {p[2]} AND due_at = {p[5]} AND status = 'PENDING' AND due_at IS NOT NULL
      AND (lease_expires_at IS NULL OR lease_expires_at < {p[3]})
      AND (next_attempt_at IS NULL OR next_attempt_at <= {p[3]})
    ORDER BY id LIMIT {p[4]}{lock}
)
RETURNING id, phone, params, attempts, error_code, zone
"""
_CLAIM_DUE_PG = _CLAIM_DUE.format(p=["$1", "$2", "$3", "$4", "$5", "$6"], lock=" FOR UPDATE SKIP LOCKED")
_CLAIM_DUE_SQLITE = _CLAIM_DUE.format(p=["?1", "?2", "?3", "?4", "?5", "?6"], lock="")


async def claim_due_page(
    blast_id: int,
    token: str,
    size: int,
    due_times: Sequence[datetime],
    *,
    lease_s: float = PENDING_LEASE_S,
    quiet: QuietHours | None = None,
) -> list[ClaimedRecipient]:
    """`claim_page` for a due-time blast: up to `size` claimable recipients of the due groups whose time has
    come (earliest group first), each group by its own index range, so rows not yet due are never walked.

    With `quiet`, a claimed recipient whose zone is inside its quiet hours now is not returned: it is given
    back, held (next_attempt_at) until the window ends in its zone, so the whole zone is held as it is met.

    Returns:
        The recipients now leased to `token`, in id order.
    """
    out: list[ClaimedRecipient] = []
    # A page that met a quiet zone claims again for what it gave back (the held rows are skipped from then on),
    # so a chunk does not end early while other zones still have due recipients.
    for _ in range(QUIET_CLAIM_ROUNDS if quiet is not None else 1):
        now = utcnow()
        got = await _claim_due_groups(blast_id, token, size - len(out), due_times, now, lease_s)
        kept = await _hold_quiet(token, got, quiet, now) if quiet is not None and got else got
        out.extend(kept)
        if len(kept) == len(got) or len(out) >= size:
            break
    out.sort(key=lambda c: c.id)
    return out


#: Claims of one page of a blast with quiet hours, at most (each round holds what it met of a quiet zone).
QUIET_CLAIM_ROUNDS = 5


async def _claim_due_groups(
    blast_id: int, token: str, size: int, due_times: Sequence[datetime], now: datetime, lease_s: float
) -> list[ClaimedRecipient]:
    until = now + timedelta(seconds=lease_s)
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    loads = json.loads
    out: list[ClaimedRecipient] = []
    for due in due_times:
        if due > now or len(out) >= size:
            break
        want = size - len(out)
        if pg:
            rows = await conn.execute_query_dict(_CLAIM_DUE_PG, [token, until, blast_id, now, want, due])
        else:
            _, rows = await conn.execute_query(
                _CLAIM_DUE_SQLITE,
                [token, until.isoformat(" "), blast_id, now.isoformat(" "), want, due.isoformat(" ")],
            )
        out.extend(
            ClaimedRecipient(
                id=int(r["id"]),
                phone=r["phone"],
                params=(loads(r["params"]) if isinstance(r["params"], str | bytes) else r["params"]) or {},
                attempts=int(r["attempts"]),
                error_code=r["error_code"],
                zone=r["zone"],
            )
            for r in rows
        )
    return out


async def _hold_quiet(
    token: str, rows: list[ClaimedRecipient], quiet: QuietHours, now: datetime
) -> list[ClaimedRecipient]:
    """Give back the claimed rows whose zone is inside its quiet hours now, each held until the window ends."""
    release: dict[str, datetime] = {}
    for zone in {r.zone for r in rows if r.zone}:
        opens = quiet.release(now, zone_of(zone))
        if opens > now:
            release[zone] = opens
    if not release:
        return rows
    for zone, opens in release.items():
        ids = [r.id for r in rows if r.zone == zone]
        await Recipient.filter(id__in=ids, status=R.PENDING, lease_owner=token).update(
            lease_owner=None, lease_expires_at=None, next_attempt_at=opens
        )
    return [r for r in rows if r.zone not in release]


def quiet_retry_at(plan: BlastPlan, zone: str | None, when: datetime) -> datetime:
    """A retry time moved past the blast's quiet hours in the recipient's zone (unchanged without them)."""
    if plan.quiet is None or not zone:
        return when
    return plan.quiet.release(when, zone_of(zone))


_DUE_EXISTS = """
SELECT 1 AS one FROM recipient
WHERE blast_id = {p[0]} AND status = 'PENDING' AND due_at IS NOT NULL AND due_at <= {p[1]}
  AND (lease_expires_at IS NULL OR lease_expires_at < {p[1]})
  AND (next_attempt_at IS NULL OR next_attempt_at <= {p[1]})
LIMIT 1
"""
_DUE_EXISTS_PG = _DUE_EXISTS.format(p=["$1", "$2"])
_DUE_EXISTS_SQLITE = _DUE_EXISTS.format(p=["?1", "?2"])


async def has_claimable(blast_id: int) -> bool:
    """True when some PENDING recipient of the blast could be claimed now (its own due time come, if any)."""
    now = utcnow()
    local: list[Any] = await Blast.filter(id=blast_id).values_list("due_times", flat=True)
    if not local or local[0] is None:
        return await Recipient.filter(blast_id=blast_id, status=R.PENDING).filter(_claimable(now)).exists()
    # A local-time blast may wait hours for its next zone: look only at the groups already due (recipient_due).
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict(_DUE_EXISTS_PG, [blast_id, now])
    else:
        rows = await conn.execute_query_dict(_DUE_EXISTS_SQLITE, [blast_id, now.isoformat(" ")])
    return bool(rows)


async def next_due_times(now: datetime) -> list[tuple[int, datetime | None]]:
    """For each PROCESSING due-time blast (local time or quiet hours): (id, its next due time after `now`, or
    None when all have come)."""
    rows = await Blast.filter(status=B.PROCESSING, due_times__isnull=False).values_list("id", "due_times")
    out: list[tuple[int, datetime | None]] = []
    for blast_id, raw in rows:
        later = [t for t in parse_due_times(raw) if t > now]
        out.append((int(blast_id), later[0] if later else None))
    return out


async def next_attempt_due(blast_id: int) -> datetime | None:
    """When the earliest deferred PENDING recipient (retry later) becomes due, if any."""
    row = await (
        Recipient.filter(blast_id=blast_id, status=R.PENDING, next_attempt_at__isnull=False)
        .order_by("next_attempt_at")
        .first()
        .values_list("next_attempt_at", flat=True)
    )
    return row  # type: ignore[return-value]  # values_list(flat) on first() gives the value or None


async def suppressed_phones(phones: Sequence[str]) -> set[str]:
    """Which of these numbers are on the suppression list (opted out)."""
    if not phones:
        return set()
    conn = connections.get("default")
    args: list[Any]
    if conn.capabilities.dialect == "postgres":
        sql, args = "SELECT phone FROM suppression WHERE phone = ANY($1)", [list(phones)]
    else:  # one page (at most 250) of numbers: well under SQLite's parameter limit
        sql, args = (
            f"SELECT phone FROM suppression WHERE phone IN ({', '.join('?' * len(phones))})",
            list(phones),
        )
    rows = await conn.execute_query_dict(sql, args)
    return {str(r["phone"]) for r in rows}


async def _move_leased(
    blast_id: int,
    token: str,
    ids: Sequence[int],
    src: RecipientStatus,
    to: RecipientStatus,
    values: Mapping[str, Any],
) -> int:
    """Move those of `ids` still leased to `token` from `src` to `to` (through the state machine)."""
    moved = await transitions.move_recipients(
        blast_id, to, sources=[src], ids=list(ids), extra_filter={"lease_owner": token}, values=values
    )
    return sum(moved.values())


async def skip_recipients(blast_id: int, token: str, ids: Sequence[int], reason: str) -> int:
    """PENDING -> SKIPPED for leased recipients that must not be sent (opted out)."""
    released = {"lease_owner": None, "lease_expires_at": None}
    return await _move_leased(blast_id, token, ids, R.PENDING, R.SKIPPED, {"error_text": reason, **released})


async def fail_before_send(blast_id: int, token: str, failures: Mapping[int, str]) -> int:
    """PENDING -> FAILED for leased recipients whose message cannot be built (missing parameter …)."""
    n = 0
    for rid, text in failures.items():  # one row each: every recipient has its own reason
        values = {"error_text": text, "failed_at": utcnow(), "lease_owner": None, "lease_expires_at": None}
        n += await _move_leased(blast_id, token, [rid], R.PENDING, R.FAILED, values)
    return n


async def mark_sending(blast_id: int, token: str, ids: Sequence[int], *, timeout_s: float) -> set[int]:
    """PENDING -> SENDING for recipients still leased to `token`, right before their requests (one set-based
    statement with the counters; the lease now outlives the request's timeout by SENDING_LEASE_GRACE_S).

    Returns:
        The ids that moved (a recipient whose lease was lost meanwhile is not sent).
    """
    lease_until = utcnow() + timedelta(seconds=timeout_s + SENDING_LEASE_GRACE_S)
    return set(await transitions.mark_sending(blast_id, token, ids, lease_until=lease_until))


async def unmark_sending(blast_id: int, token: str, ids: Sequence[int]) -> int:
    """SENDING -> PENDING (attempt count restored) for recipients of `token` that were marked but never sent,
    because the mark's result was lost with the database connection. The lease stays, for `release_leases`.

    Returns:
        How many moved.
    """
    if not ids:
        return 0
    return await _move_leased(blast_id, token, ids, R.SENDING, R.PENDING, {"attempts": F("attempts") - 1})


async def release_leases(token: str, ids: Sequence[int]) -> int:
    """Give back claimed PENDING recipients that were not sent (chunk ended, paused, shutting down)."""
    if not ids:
        return 0
    return await Recipient.filter(id__in=list(ids), status=R.PENDING, lease_owner=token).update(
        lease_owner=None, lease_expires_at=None
    )


# ------------------------------------------------------------------------------------------------------------
# starting, pausing and finishing blasts
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """What happened to a due SCHEDULED blast: `started`, `missed` (paused), `expired` (rest cancelled) or
    `lost` (another daemon claimed it, or it changed meanwhile)."""

    kind: str
    blast_id: int
    lateness_s: float
    pending: int = 0


def format_duration(seconds: float) -> str:
    """A short human duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


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
                f"missed its send time by {format_duration(late_s)} (more than BLAST_MISSED_CUTOFF, "
                f"{format_duration(missed_cutoff_s)}): resume to send it now, or cancel it"
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
        won = await transitions.transition_blast(
            blast_id,
            B.PROCESSING,
            actor=actor,
            action="start",
            sources=[B.SCHEDULED],
            values={"started_at": blast.started_at or now},
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


async def pause_for_error(blast_id: int, *, reason: str, code: int | None, actor: str) -> bool:
    """PROCESSING -> PAUSED because of an error every other recipient would hit too (reason names the fix).

    Returns:
        True if this call paused the blast (False: it was no longer PROCESSING).
    """
    try:
        won = await transitions.transition_blast(
            blast_id,
            B.PAUSED,
            actor=actor,
            action="pause",
            sources=[B.PROCESSING],
            values={"last_error": reason, "error_code": code},
            detail={"reason": reason, "code": code},
        )
    except InvalidTransition:
        return False
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


# ------------------------------------------------------------------------------------------------------------
# recovery
# ------------------------------------------------------------------------------------------------------------


def owner_daemon(lease_owner: str) -> str:
    """The daemon id of a lease token ("host:pid:nonce/chunk" -> "host:pid:nonce")."""
    return lease_owner.split("/", 1)[0]


def pid_is_dead(daemon_id: str, this_host: str) -> bool:
    """True when the daemon ran on this host and its process is gone (pids are checked, not heartbeats)."""
    parts = daemon_id.split(":")
    if len(parts) < 3 or parts[0] != this_host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class RecoveryCounts:
    unknown: int = 0
    released: int = 0
    dead_owners: tuple[str, ...] = ()

    @property
    def touched(self) -> bool:
        return bool(self.unknown or self.released)


UNKNOWN_TEXT = (
    "the daemon sending it stopped (crash, kill or outage) before the result was written: the message may "
    "have gone out; check the status webhooks or retry with --include-unknown"
)


async def recover_leases(*, is_dead: Callable[[str], bool]) -> RecoveryCounts:
    """SENDING recipients of dead daemons (or with an expired lease) become UNKNOWN; PENDING recipients leased
    by dead daemons are freed. Safe to run in every daemon at once (conditional updates).

    Args:
        is_dead: tells whether a daemon id (from a lease token) is dead.
    """
    now = utcnow()
    unknown = released = 0
    dead: set[str] = set()
    found: list[Any] = await Blast.filter(n_sending__gt=0).values_list("id", flat=True)
    blast_ids = [int(b) for b in found]
    for blast_id in blast_ids:
        owners = set(
            await Recipient.filter(blast_id=blast_id, status=R.SENDING, lease_owner__isnull=False)
            .distinct()
            .values_list("lease_owner", flat=True)
        )
        for owner in owners:
            if not is_dead(owner_daemon(str(owner))):
                continue
            dead.add(owner_daemon(str(owner)))
            n = await _sending_to_unknown(blast_id, {"lease_owner": owner})
            if n:
                log.warning("blast %s: %s SENDING recipients of dead lease %s -> UNKNOWN", blast_id, n, owner)
            unknown += n
            released += await Recipient.filter(blast_id=blast_id, status=R.PENDING, lease_owner=owner).update(
                lease_owner=None, lease_expires_at=None
            )
        n = await _sending_to_unknown(blast_id, {"lease_expires_at__lt": now})
        if n:
            log.warning("blast %s: %s SENDING recipients with an expired lease -> UNKNOWN", blast_id, n)
        unknown += n
    return RecoveryCounts(unknown, released, tuple(sorted(dead)))


async def _sending_to_unknown(blast_id: int, lease_filter: dict[str, Any]) -> int:
    """SENDING recipients matching `lease_filter` become UNKNOWN (their request may have left); returns how many."""
    moved = await transitions.move_recipients(
        blast_id,
        R.UNKNOWN,
        sources=[R.SENDING],
        extra_filter=lease_filter,
        values={"error_text": UNKNOWN_TEXT, "lease_owner": None, "lease_expires_at": None},
    )
    return sum(moved.values())


async def release_dead_pending(blast_id: int, *, is_dead: Callable[[str], bool]) -> int:
    """Free PENDING recipients of a blast leased by dead daemons (scans the blast's leased rows)."""
    owners = set(
        await Recipient.filter(blast_id=blast_id, status=R.PENDING, lease_owner__isnull=False)
        .filter(lease_expires_at__gt=utcnow())
        .distinct()
        .values_list("lease_owner", flat=True)
    )
    n = 0
    for owner in owners:
        if is_dead(owner_daemon(str(owner))):
            n += await Recipient.filter(blast_id=blast_id, status=R.PENDING, lease_owner=owner).update(
                lease_owner=None, lease_expires_at=None
            )
    if n:
        log.info("blast %s: %s PENDING recipients leased by dead daemons released", blast_id, n)
    return n
