"""Provides the database side of a chunk's sending: what a chunk needs to know about its blast, claiming pages
of recipients under a lease, the suppression check of a page, and marking recipients SENDING (and giving them
back) only while the lease holds. Starting and finishing blasts are `shared.services.blast_lifecycle`; the
leases of dead daemons are recovered by `shared.services.lease_recovery`.

Leases: a claimed page of PENDING recipients carries `lease_owner` = the chunk's token ("<daemon id>/<chunk>")
and a short `lease_expires_at`; a recipient is marked SENDING only by the holder of its lease, right before
its request, and its result is written only while that lease holds. The token's daemon id (host:pid:nonce) lets
any daemon recognise the leases of a dead one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.expressions import F, Q

from shared.clock import utcnow
from shared.models import Blast, Recipient
from shared.parsing.quiet import QuietHours, parse_quiet_hours
from shared.parsing.zones import zone_of
from shared.services import transitions
from shared.status import BlastStatus, RecipientStatus

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus

#: A claimed-but-not-yet-sent PENDING recipient is free again after this long, whatever happened to its chunk.
PENDING_LEASE_S = 20.0
#: A SENDING recipient's lease outlives its request (timeout) by this much; after that it becomes UNKNOWN.
SENDING_LEASE_GRACE_S = 60.0


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
    #: Due groups up to this due time may be claimed (see blast_lifecycle.check_due_groups; None: none yet).
    accepted_due_at: datetime | None = None


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
        accepted_due_at=blast.accepted_due_at,
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
# A chunk of one sender number of a pool: takes the recipients not sent from any number yet, or first sent from
# this one (a retry keeps its number), and assigns them to it.
_CLAIM_SENDER = """
UPDATE recipient SET lease_owner = {p[0]}, lease_expires_at = {p[1]}, sender_id = {p[6]}
WHERE id IN (
    SELECT id FROM recipient
    WHERE blast_id = {p[2]} AND status = 'PENDING' AND id > {p[5]}
      AND (sender_id IS NULL OR sender_id = {p[6]})
      AND (lease_expires_at IS NULL OR lease_expires_at < {p[3]})
      AND (next_attempt_at IS NULL OR next_attempt_at <= {p[3]})
    ORDER BY id LIMIT {p[4]}{lock}
)
RETURNING id, phone, params, attempts, error_code
"""
_CLAIM_SENDER_PG = _CLAIM_SENDER.format(
    p=["$1", "$2", "$3", "$4", "$5", "$6", "$7"], lock=" FOR UPDATE SKIP LOCKED"
)
_CLAIM_SENDER_SQLITE = _CLAIM_SENDER.format(p=["?1", "?2", "?3", "?4", "?5", "?6", "?7"], lock="")


async def claim_page(
    blast_id: int,
    token: str,
    size: int,
    *,
    lease_s: float = PENDING_LEASE_S,
    after_id: int = 0,
    sender: str | None = None,
) -> list[ClaimedRecipient]:
    """Lease up to `size` claimable PENDING recipients of a blast to `token` (their status does not change).

    A recipient is claimable when it is PENDING, due (next_attempt_at passed) and not leased (or its lease
    expired). One statement selects and leases them, so two claimers never hold the same row (on PostgreSQL
    the selection skips rows another claimer is locking; SQLite has one writer at a time).

    Args:
        after_id: claim only ids above this one (a sender's cursor: the index range of rows it already moved
            on is not walked again; a claim from 0 finds the rows due for a retry or released).
        sender: a chunk of one number of the blast's pool: only recipients not yet assigned to a number or
            assigned to this one, and they are assigned to it (kept on retry: conversation continuity).

    Returns:
        The recipients now leased to `token`, in id order.
    """
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    extra = [] if sender is None else [sender]
    if pg:  # execute_query would not fetch the RETURNING rows of a statement that starts with UPDATE
        sql = _CLAIM_PG if sender is None else _CLAIM_SENDER_PG
        rows = await conn.execute_query_dict(sql, [token, until, blast_id, now, size, after_id, *extra])
    else:
        sqlite_now = now.isoformat(" ")  # tortoise stores datetimes so on SQLite; compared as text
        sql = _CLAIM_SQLITE if sender is None else _CLAIM_SENDER_SQLITE
        _, rows = await conn.execute_query(
            sql, [token, until.isoformat(" "), blast_id, sqlite_now, size, after_id, *extra]
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
#: The same for a chunk of one number of the blast's pool (see _CLAIM_SENDER): unassigned rows or its own.
_CLAIM_DUE_SENDER = _CLAIM_DUE.replace(
    "lease_expires_at = {p[1]}\n", "lease_expires_at = {p[1]}, sender_id = {p[6]}\n", 1
).replace(
    "AND due_at IS NOT NULL\n",
    "AND due_at IS NOT NULL\n      AND (sender_id IS NULL OR sender_id = {p[6]})\n",
    1,
)
_CLAIM_DUE_SENDER_PG = _CLAIM_DUE_SENDER.format(
    p=["$1", "$2", "$3", "$4", "$5", "$6", "$7"], lock=" FOR UPDATE SKIP LOCKED"
)
_CLAIM_DUE_SENDER_SQLITE = _CLAIM_DUE_SENDER.format(p=["?1", "?2", "?3", "?4", "?5", "?6", "?7"], lock="")


async def claim_due_page(
    blast_id: int,
    token: str,
    size: int,
    due_times: Sequence[datetime],
    *,
    lease_s: float = PENDING_LEASE_S,
    quiet: QuietHours | None = None,
    sender: str | None = None,
    at: datetime | None = None,
) -> list[ClaimedRecipient]:
    """`claim_page` for a due-time blast: up to `size` claimable recipients of the due groups whose time has
    come (earliest group first), each group by its own index range, so rows not yet due are never walked.

    With `quiet`, a claimed recipient whose zone is inside its quiet hours now is not returned: it is given
    back, held (next_attempt_at) until the window ends in its zone, so the whole zone is held as it is met.
    `sender`: as for `claim_page` (a chunk of one number of the blast's pool).
    `at`: claim as of this time instead of now (a chunk queued just ahead of a group's time leases its first page
    before it, and sends it from that time on; whatever is due by then, quiet hours judged at that time).

    Returns:
        The recipients now leased to `token`, in id order.
    """
    out: list[ClaimedRecipient] = []
    # A page that met a quiet zone claims again for what it gave back (the held rows are skipped from then on),
    # so a chunk does not end early while other zones still have due recipients.
    for _ in range(QUIET_CLAIM_ROUNDS if quiet is not None else 1):
        now = max(at, utcnow()) if at is not None else utcnow()
        got = await _claim_due_groups(blast_id, token, size - len(out), due_times, now, lease_s, sender)
        kept = await _hold_quiet(token, got, quiet, now) if quiet is not None and got else got
        out.extend(kept)
        if len(kept) == len(got) or len(out) >= size:
            break
    out.sort(key=lambda c: c.id)
    return out


#: Claims of one page of a blast with quiet hours, at most (each round holds what it met of a quiet zone).
QUIET_CLAIM_ROUNDS = 5


async def _claim_due_groups(
    blast_id: int,
    token: str,
    size: int,
    due_times: Sequence[datetime],
    now: datetime,
    lease_s: float,
    sender: str | None,
) -> list[ClaimedRecipient]:
    until = now + timedelta(seconds=lease_s)
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    loads = json.loads
    extra = [] if sender is None else [sender]
    out: list[ClaimedRecipient] = []
    for due in due_times:
        if due > now or len(out) >= size:
            break
        want = size - len(out)
        if pg:
            sql = _CLAIM_DUE_PG if sender is None else _CLAIM_DUE_SENDER_PG
            rows = await conn.execute_query_dict(sql, [token, until, blast_id, now, want, due, *extra])
        else:
            sql = _CLAIM_DUE_SQLITE if sender is None else _CLAIM_DUE_SENDER_SQLITE
            _, rows = await conn.execute_query(
                sql,
                [token, until.isoformat(" "), blast_id, now.isoformat(" "), want, due.isoformat(" "), *extra],
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
