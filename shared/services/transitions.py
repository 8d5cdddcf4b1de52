"""Provides the only writers of blast and recipient statuses: compare-and-set updates checked against the tables
of `shared.status`, with the per-blast counters changed in the same transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from shared.clock import utcnow
from shared.errors import InvalidTransition, NotFound
from shared.models import AuditLog, Blast, Recipient
from shared.status import (
    RECIPIENT_COUNTER_FIELDS,
    BlastStatus,
    RecipientStatus,
    blast_allowed,
    blast_sources,
    recipient_allowed,
)

log = logging.getLogger(__name__)
R = RecipientStatus


# --------------------------------------------------------------------------------------------------------------
# blasts
# --------------------------------------------------------------------------------------------------------------


async def transition_blast(
    blast_id: int,
    to: BlastStatus,
    *,
    actor: str,
    action: str,
    sources: Iterable[BlastStatus] | None = None,
    detail: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    conn: BaseDBAsyncClient | None = None,
    where: Q | None = None,
) -> bool:
    """Move a blast to `to` if its current status allows it (one conditional UPDATE; the row count says who won).

    Args:
        blast_id: the blast.
        to: wanted status.
        actor: who asks (OS user, or daemon@host), for the audit log.
        action: audit action name (e.g. "cancel", "start", "pause").
        sources: restrict the accepted current statuses further (default: every allowed source).
        detail: extra audit detail (reason …).
        values: other columns written in the same UPDATE (started_at, last_error …).
        conn: an open transaction to join.
        where: a further condition on the blast row, checked in the same UPDATE (False when it does not hold).

    Returns:
        True if this call moved the blast, False if its status had changed meanwhile (someone else won) or
        `where` did not hold.

    Raises:
        NotFound: no such blast.
        InvalidTransition: the current status cannot move to `to` (message names both).
    """
    allowed = blast_sources(to)
    if sources is not None:
        allowed = allowed & frozenset(sources)
    row_values: dict[str, Any] = {"status": to, "updated_at": utcnow(), **(values or {})}
    query = Blast.filter(id=blast_id, status__in=list(allowed))
    if where is not None:
        query = query.filter(where)
    moved = await query.using_db(conn).update(**row_values)
    if moved:
        await AuditLog.create(
            actor=actor,
            action=action,
            entity="blast",
            entity_id=str(blast_id),
            detail={"to": to.value, **(detail or {})},
            using_db=conn,
        )
        log.info("blast %s -> %s (%s by %s)", blast_id, to.value, action, actor)
        return True
    current = await Blast.filter(id=blast_id).using_db(conn).values_list("status", flat=True)
    if not current:
        raise NotFound(f"blast {blast_id} does not exist")
    status = BlastStatus(current[0])
    if status == to or not blast_allowed(status, to) or status not in allowed:
        raise InvalidTransition(_blast_refusal(blast_id, status, to, action))
    return False


def _blast_refusal(blast_id: int, status: BlastStatus, to: BlastStatus, action: str) -> str:
    hint = {
        "cancel": "only DRAFT, SCHEDULED, PROCESSING or PAUSED blasts can be cancelled",
        "pause": "only SCHEDULED or PROCESSING blasts can be paused",
        "resume": "only PAUSED blasts can be resumed",
        "retry": "only FAILED or partly failed COMPLETED blasts can be retried",
        "edit": "only DRAFT or SCHEDULED blasts can be edited",
        "reschedule": "only DRAFT, SCHEDULED or PAUSED blasts can be rescheduled",
    }.get(action)
    if hint is None:
        if status == to:
            return f"blast {blast_id} is already {status.value}"
        hint = f"{status.value} cannot become {to.value}"
    return f"blast {blast_id} is {status.value}; {hint}"


async def audit(
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    detail: Mapping[str, Any] | None = None,
    conn: BaseDBAsyncClient | None = None,
) -> None:
    """Record an action that is not a status change (edit, create, retry counts …)."""
    await AuditLog.create(
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        detail=dict(detail or {}),
        using_db=conn,
    )


# --------------------------------------------------------------------------------------------------------------
# recipients: counters
# --------------------------------------------------------------------------------------------------------------


def _counter_updates(deltas: Mapping[RecipientStatus, int]) -> dict[str, Any]:
    return {RECIPIENT_COUNTER_FIELDS[s]: F(RECIPIENT_COUNTER_FIELDS[s]) + d for s, d in deltas.items() if d}


async def apply_counter_deltas(
    deltas: Mapping[int, Mapping[RecipientStatus, int]], conn: BaseDBAsyncClient | None
) -> None:
    """Add per-bucket deltas to blasts' counters (call inside the transaction that moved the rows)."""
    for blast_id, by_status in deltas.items():
        updates = _counter_updates(by_status)
        if updates:
            await Blast.filter(id=blast_id).using_db(conn).update(**updates)


async def move_recipients(
    blast_id: int,
    to: RecipientStatus,
    *,
    sources: Iterable[RecipientStatus],
    ids: Sequence[int] | None = None,
    extra_filter: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    conn: BaseDBAsyncClient | None = None,
) -> dict[RecipientStatus, int]:
    """Move a blast's recipients in `sources` (and, if given, in `ids`) to `to`, keeping counters exact.

    Returns:
        How many rows moved from each source status.

    Raises:
        InvalidTransition: a source that the state machine does not allow to move to `to`.
    """
    sources = list(sources)
    for src in sources:
        if not recipient_allowed(src, to):
            raise InvalidTransition(f"recipients cannot move from {src.value} to {to.value}")
    moved: dict[RecipientStatus, int] = {}

    async def run(tx: BaseDBAsyncClient) -> None:
        for src in sources:
            query = Recipient.filter(blast_id=blast_id, status=src)
            if ids is not None:
                query = query.filter(id__in=list(ids))
            if extra_filter:
                query = query.filter(**extra_filter)
            n = await query.using_db(tx).update(status=to, updated_at=utcnow(), **(values or {}))
            if n:
                moved[src] = n
        if moved:
            delta: dict[RecipientStatus, int] = defaultdict(int)
            for src, n in moved.items():
                delta[src] -= n
                delta[to] += n
            await apply_counter_deltas({blast_id: delta}, tx)

    if ids is not None and not ids:
        return moved
    if conn is not None:
        await run(conn)
    else:
        async with in_transaction() as tx:
            await run(tx)
    return moved


# --------------------------------------------------------------------------------------------------------------
# recipients: send results
# --------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: one is made per message, and a frozen __init__ costs 3x as much
class SendOutcome:
    """The result of one send attempt, as the daemon writes it (treat as immutable).

    `to` is SENT (with wamid), FAILED (with error), PENDING (retry at next_attempt_at) or UNKNOWN. `lease_owner`,
    when set, is the chunk token that must still hold the row's lease for the result to be written.
    """

    recipient_id: int
    blast_id: int
    to: RecipientStatus
    wamid: str | None = None
    wa_id: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    next_attempt_at: datetime | None = None
    at: datetime = field(default_factory=utcnow)
    lease_owner: str | None = None


#: Where a send result may come from, and go to (checked once against the state machine at import).
_RESULT_TARGETS = (R.SENT, R.FAILED, R.PENDING, R.UNKNOWN)
assert all(recipient_allowed(R.SENDING, to) for to in _RESULT_TARGETS)
assert recipient_allowed(R.PENDING, R.SENDING)

# The change of a SENDING row still under its lease (v: the results, one row each), for both databases.
_RESULT_UPDATE = """
    status = v.status,
    updated_at = v.at,
    lease_owner = NULL,
    lease_expires_at = NULL,
    wamid = COALESCE(v.wamid, r.wamid),
    wa_id = COALESCE(v.wa_id, r.wa_id),
    sent_at = CASE WHEN v.status = 'SENT' THEN v.at ELSE r.sent_at END,
    failed_at = CASE WHEN v.status = 'FAILED' THEN v.at ELSE r.failed_at END,
    next_attempt_at = CASE WHEN v.status = 'PENDING' THEN v.next_at ELSE r.next_attempt_at END,
    error_code = v.error_code,
    error_text = v.error_text
FROM v
WHERE r.id = v.id AND r.status = 'SENDING' AND (v.owner IS NULL OR r.lease_owner = v.owner)
"""

# One statement per flush on PostgreSQL: the rows still SENDING under their lease take their results, the blasts'
# counters move by what the UPDATE returned, and a SENT result whose row a webhook already moved on (DELIVERED,
# READ) only leaves its wamid there. Rows are given in id order (the order every writer locks them in).
_RESULTS_PG = f"""
WITH v AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::int[], $8::text[], $9::timestamptz[])
        AS v(id, owner, status, wamid, wa_id, at, error_code, error_text, next_at)
), u AS (
    UPDATE recipient AS r SET {_RESULT_UPDATE}
    RETURNING r.id, r.blast_id, v.status AS moved_to
), c AS (
    SELECT blast_id, count(*) AS n,
        count(*) FILTER (WHERE moved_to = 'SENT') AS sent,
        count(*) FILTER (WHERE moved_to = 'FAILED') AS failed,
        count(*) FILTER (WHERE moved_to = 'PENDING') AS pending,
        count(*) FILTER (WHERE moved_to = 'UNKNOWN') AS unknown
    FROM u GROUP BY blast_id
), b AS (
    UPDATE blast SET
        n_sending = n_sending - c.n,
        n_sent = n_sent + c.sent,
        n_failed = n_failed + c.failed,
        n_pending = n_pending + c.pending,
        n_unknown = n_unknown + c.unknown
    FROM c WHERE blast.id = c.blast_id
), w AS (
    UPDATE recipient AS r SET wamid = v.wamid, wa_id = v.wa_id, sent_at = v.at
    FROM v
    WHERE r.id = v.id AND v.status = 'SENT' AND r.wamid IS NULL AND r.id NOT IN (SELECT id FROM u)
)
SELECT count(*) AS changed FROM u
"""

# SQLite (one writer at a time): the same UPDATE over a VALUES table, then the counters from what it returned.
_RESULTS_SQLITE = f"""
WITH v(id, owner, status, wamid, wa_id, at, error_code, error_text, next_at) AS (VALUES {{rows}})
UPDATE recipient AS r SET {_RESULT_UPDATE}
RETURNING id, blast_id, status
"""
_SQLITE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: Rows per SQLite statement (9 parameters each, well under SQLite's 32,766).
_SQLITE_ROWS_MAX = 500

_COUNTERS_SQL = (
    "UPDATE blast SET n_sending = n_sending + {p}, n_sent = n_sent + {p}, n_failed = n_failed + {p}, "
    "n_pending = n_pending + {p}, n_unknown = n_unknown + {p} WHERE id = {p}"
)
_RESULT_COUNTERS = (R.SENDING, R.SENT, R.FAILED, R.PENDING, R.UNKNOWN)


def _result_row(o: SendOutcome, owner: str | None) -> tuple[Any, ...]:
    sent = o.to == R.SENT
    return (
        o.recipient_id,
        o.lease_owner or owner,
        o.to.value,
        o.wamid if sent else None,
        o.wa_id if sent else None,
        o.at,
        None if sent else o.error_code,
        None if sent else o.error_text,
        o.next_attempt_at if o.to == R.PENDING else None,
    )


async def record_send_outcomes(outcomes: Sequence[SendOutcome], *, lease_owner: str | None = None) -> int:
    """Write a batch of send results set-based (one statement on PostgreSQL, one UPDATE and the counters in one
    transaction on SQLite), from SENDING only, never downgrading a status that a webhook already moved forward
    (the wamid is still stored then).

    Args:
        outcomes: the results (each may carry the lease owner it was sent under).
        lease_owner: the owner for results that carry none: only rows still leased by it are written (a
            recovered lease is not overwritten). None and no owner on the result: any SENDING row is written.

    Returns:
        How many recipients changed status.
    """
    if not outcomes:
        return 0
    for o in outcomes:
        if o.to not in _RESULT_TARGETS:
            raise InvalidTransition(f"recipients cannot move from SENDING to {o.to.value}")
    latest: dict[int, SendOutcome] = {o.recipient_id: o for o in outcomes}  # one result per row and batch
    rows = [_result_row(latest[rid], lease_owner) for rid in sorted(latest)]
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        columns = [list(c) for c in zip(*rows, strict=True)]
        _, result = await conn.execute_query(_RESULTS_PG, columns)
        return int(result[0]["changed"])
    return await _record_results_sqlite(rows)


async def _record_results_sqlite(rows: Sequence[tuple[Any, ...]]) -> int:
    changed = 0
    deltas: dict[int, dict[RecipientStatus, int]] = defaultdict(lambda: defaultdict(int))
    async with in_transaction() as tx:
        moved: set[int] = set()
        for start in range(0, len(rows), _SQLITE_ROWS_MAX):
            part = rows[start : start + _SQLITE_ROWS_MAX]
            sql = _RESULTS_SQLITE.format(rows=", ".join([_SQLITE_ROW] * len(part)))
            _, returned = await tx.execute_query(sql, [value for row in part for value in row])
            for r in returned:
                moved.add(int(r["id"]))
                by = deltas[int(r["blast_id"])]
                by[R.SENDING] -= 1
                by[RecipientStatus(r["status"])] += 1
        changed = len(moved)
        for blast_id, by in deltas.items():
            sql = _COUNTERS_SQL.format(p="?")
            await tx.execute_query(sql, [*(by.get(s, 0) for s in _RESULT_COUNTERS), blast_id])
        # A webhook overtook the send result (DELIVERED/READ already): keep the status, store the wamid.
        for row in rows:
            if row[2] == R.SENT.value and row[0] not in moved:
                await tx.execute_query(
                    "UPDATE recipient SET wamid = ?, wa_id = ?, sent_at = ? WHERE id = ? AND wamid IS NULL",
                    [row[3], row[4], row[5], row[0]],
                )
    return changed


# The ids drive the UPDATE (primary-key lookups). Given `blast_id = $5 AND status = 'PENDING'` as such, the
# planner, misled by statistics of a blast whose rows change status by the thousand, walked the blast's whole
# PENDING range of the (blast_id, status, id) index once per mark, dead entries included (6 ms for 10 rows
# halfway through 20,000): the two checks are written so that no index can serve them.
_MARK_PG = """
WITH u AS (
    UPDATE recipient AS r SET status = 'SENDING', attempts = r.attempts + 1, lease_expires_at = $3, updated_at = $4
    FROM unnest($1::bigint[]) AS m(id)
    WHERE r.id = m.id AND r.lease_owner = $2 AND r.blast_id + 0 = $5 AND r.status || '' = 'PENDING'
    RETURNING r.id
), b AS (
    UPDATE blast SET n_pending = n_pending - (SELECT count(*) FROM u), n_sending = n_sending + (SELECT count(*) FROM u)
    WHERE id = $5 AND EXISTS (SELECT 1 FROM u)
)
SELECT id FROM u
"""
_MARK_SQLITE = (
    "UPDATE recipient SET status = 'SENDING', attempts = attempts + 1, lease_expires_at = ?, updated_at = ? "
    "WHERE id IN ({ids}) AND blast_id = ? AND status = 'PENDING' AND lease_owner = ? RETURNING id"
)


async def mark_sending(blast_id: int, token: str, ids: Sequence[int], *, lease_until: datetime) -> list[int]:
    """PENDING -> SENDING (attempt counted, lease extended) for those of `ids` still leased to `token`, with the
    blast's counters: one statement on PostgreSQL, one UPDATE and the counters in one transaction on SQLite.

    Returns:
        The ids that moved (a recipient whose lease was lost meanwhile is not among them).
    """
    if not ids:
        return []
    now = utcnow()
    conn = connections.get("default")
    ordered = sorted(ids)
    if conn.capabilities.dialect == "postgres":
        _, rows = await conn.execute_query(_MARK_PG, [ordered, token, lease_until, now, blast_id])
        return [int(r["id"]) for r in rows]
    async with in_transaction() as tx:
        sql = _MARK_SQLITE.format(ids=", ".join("?" * len(ordered)))
        _, rows = await tx.execute_query(sql, [lease_until, now, *ordered, blast_id, token])
        if rows:
            n = len(rows)
            await tx.execute_query(
                "UPDATE blast SET n_pending = n_pending - ?, n_sending = n_sending + ? WHERE id = ?",
                [n, n, blast_id],
            )
    return [int(r["id"]) for r in rows]
