"""Provides the only writers of blast and recipient statuses: compare-and-set updates checked against the tables
of `shared.status`, with the per-blast counters changed in the same transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from shared.errors import InvalidTransition, NotFound
from shared.models import AuditLog, Blast, Recipient
from shared.status import (
    DELIVERY_RANK,
    RECIPIENT_COUNTER_FIELDS,
    BlastStatus,
    RecipientStatus,
    blast_allowed,
    blast_sources,
    recipient_allowed,
)

log = logging.getLogger(__name__)
R = RecipientStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


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

    Returns:
        True if this call moved the blast, False if its status had changed meanwhile (someone else won).

    Raises:
        NotFound: no such blast.
        InvalidTransition: the current status cannot move to `to` (message names both).
    """
    allowed = blast_sources(to)
    if sources is not None:
        allowed = allowed & frozenset(sources)
    row_values: dict[str, Any] = {"status": to, "updated_at": utcnow(), **(values or {})}
    moved = await Blast.filter(id=blast_id, status__in=list(allowed)).using_db(conn).update(**row_values)
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


# --------------------------------------------------------------------------------------------------------------
# recipients: delivery statuses (webhooks)
# --------------------------------------------------------------------------------------------------------------

_DELIVERY_STATUS = {
    "sent": R.SENT,
    "delivered": R.DELIVERED,
    "read": R.READ,
    "played": R.READ,
    "failed": R.FAILED,
}


@dataclass(frozen=True, slots=True)
class Pricing:
    """The `pricing` object of a status webhook: what Meta charges (or not) for the message."""

    category: str | None  # marketing | utility | authentication | authentication_international | service …
    type: str | None  # regular | free_customer_service | free_entry_point
    model: str | None  # PMP (per message, since July 2025) | CBP (per conversation, before)
    #: Charged: type "regular" (or, without a type, Meta's deprecated `billable` flag).
    billable: bool | None


#: Recipient columns of a Pricing, in the order of its fields.
PRICING_COLUMNS = ("pricing_category", "pricing_type", "pricing_model", "billable")


def pricing_values(p: Pricing) -> dict[str, Any]:
    """A Pricing as recipient column values (None where Meta said nothing, so a stored value is kept)."""
    return {
        k: v
        for k, v in zip(PRICING_COLUMNS, (p.category, p.type, p.model, p.billable), strict=True)
        if v is not None
    }


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """One status event from Meta for one message."""

    wamid: str
    status: str  # sent | delivered | read | played | failed
    at: datetime
    recipient_id: int | None = None  # from biz_opaque_callback_data, when the wamid is not stored yet
    error_code: int | None = None
    error_text: str | None = None
    attempt: int | None = None  # from biz_opaque_callback_data ("try="): which send attempt of the recipient
    pricing: Pricing | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    applied: int
    ignored: int  # duplicate or older than what is stored
    unmatched: list[DeliveryUpdate]
    failed_after_delivery: int
    #: blast id -> number of failures applied (for the failure-rate auto-pause)
    failures_by_blast: dict[int, int]
    #: blast id -> error code (None if Meta gave none) -> failures applied (tells opt-outs from real failures)
    failure_codes: dict[int, dict[int | None, int]] = field(default_factory=dict)
    #: (pricing category, phone) of each message that became a billable delivery in this batch (counted once per
    #: recipient: delivered or read, with a billable pricing, stored now or before).
    billable: list[tuple[str, str]] = field(default_factory=list)


def delivery_target(current: RecipientStatus, event: str) -> RecipientStatus | None:
    """The status a recipient in `current` moves to on a webhook `event`, or None to leave it (forward only)."""
    wanted = _DELIVERY_STATUS.get(event)
    if wanted is None:
        return None
    if wanted == R.FAILED:
        # FAILED after SENT (or on an UNKNOWN/SENDING attempt) applies; after DELIVERED/READ it is only logged.
        return R.FAILED if current in (R.SENT, R.UNKNOWN, R.SENDING) else None
    if current in DELIVERY_RANK:
        return wanted if DELIVERY_RANK[wanted] > DELIVERY_RANK[current] else None
    if current in (R.SENDING, R.UNKNOWN):
        return wanted
    return None


async def apply_delivery_updates(
    updates: Sequence[DeliveryUpdate], *, conn: BaseDBAsyncClient | None = None
) -> DeliveryResult:
    """Apply a batch of webhook statuses, forward only, idempotently; statuses for wamids not stored yet are
    matched by recipient id (biz_opaque_callback_data) or returned as unmatched for a later try.

    Args:
        updates: the statuses.
        conn: an open transaction to join (default: one of its own).
    """
    if not updates:
        return DeliveryResult(0, 0, [], 0, {})
    if conn is not None:
        return await _apply_delivery_updates(updates, conn)
    async with in_transaction() as tx:
        return await _apply_delivery_updates(updates, tx)


_ROW_FIELDS = ("id", "blast_id", "status", "wamid", "attempts", "phone", "pricing_category", "billable")


async def _delivery_rows(tx: BaseDBAsyncClient, column: str, keys: Sequence[Any]) -> list[dict[str, Any]]:
    """Recipient rows by wamid or id; on PostgreSQL locked (in id order) until the transaction ends, so that
    the grouped UPDATEs below move exactly the rows they were planned for.
    """
    if not keys:
        return []
    if tx.capabilities.dialect == "postgres":
        sql = (
            f"SELECT {', '.join(_ROW_FIELDS)} FROM recipient WHERE {column} = ANY($1) ORDER BY id FOR UPDATE"
        )
        _, rows = await tx.execute_query(sql, [list(keys)])
        return [dict(r) for r in rows]
    query = Recipient.filter(**{f"{column}__in": list(keys)}).using_db(tx)
    return list(await query.values(*_ROW_FIELDS))


CallbackVerdict = Literal["match", "stale", "later"]


def match_by_callback(
    status: RecipientStatus, wamid: str | None, attempts: int, update: DeliveryUpdate
) -> CallbackVerdict:
    """Whether a status found by its callback data ("blast=…;rcpt=…;try=N", the wamid not stored on the row)
    belongs to the recipient row as it is now.

    The row has made `attempts` send attempts (counted when it was marked SENDING); the status is for attempt
    N (`update.attempt`). The rule:

    - N is the row's latest attempt: "match" (the status reports exactly the attempt the row is about; an older
      attempt's wamid still stored on a re-queued row does not matter). If the row is PENDING again (an
      operator retried its UNKNOWN, or a 5xx made it retry later), a `sent`/`delivered`/`read` moves it on:
      the message went out and is not sent again.
    - N older than the latest, and a `failed` status: "stale". The older attempt's failure says nothing about
      the newer one.
    - N older, `sent`/`delivered`/`read`, and the row UNKNOWN or PENDING (an operator retried it, or the newer
      attempt's outcome is not known): "match". The status proves a message went out; the row takes its
      wamid, and a PENDING row is not sent again.
    - N older and the row SENDING: "later" (parked as an orphan and tried again once the newer attempt's result
      is written: then the row is UNKNOWN and the status matches, or SENT and it never does).
    - N older and the row SENT, DELIVERED or READ (the newer attempt is accepted, with its own wamid), or
      FAILED, CANCELLED or SKIPPED: "stale". A late status of an earlier attempt never changes them.
    - N newer than the row's attempts (cannot come from this sender): "later".
    - No attempt in the callback data (older senders, parked orphans): "match" when the row stores no wamid
      or the same one, else "later" — the rule before attempts were checked.

    Stale statuses are counted as ignored (not parked: they can never match).
    """
    n = update.attempt
    if n is None:
        return "match" if wamid in (None, update.wamid) else "later"
    if n == attempts:
        return "match"
    if n > attempts:
        return "later"
    if update.status == "failed":
        return "stale"
    if status in (R.UNKNOWN, R.PENDING):
        return "match"
    if status == R.SENDING:
        return "later"
    return "stale"


@dataclass(slots=True)
class _Plan:
    """The net change of one recipient row in a batch: from its stored status, with the merged column values."""

    blast_id: int
    source: RecipientStatus
    values: dict[str, Any]
    row: dict[
        str, Any
    ]  # as stored (status, pricing_category, billable …), for what the plan newly makes billable


async def _apply_delivery_updates(updates: Sequence[DeliveryUpdate], tx: BaseDBAsyncClient) -> DeliveryResult:
    applied = ignored = failed_late = 0
    unmatched: list[DeliveryUpdate] = []
    failures: dict[int, int] = defaultdict(int)
    codes: dict[int, dict[int | None, int]] = defaultdict(lambda: defaultdict(int))
    deltas: dict[int, dict[RecipientStatus, int]] = defaultdict(lambda: defaultdict(int))
    rows = await _delivery_rows(tx, "wamid", list({u.wamid for u in updates}))
    by_wamid = {r["wamid"]: r for r in rows}
    by_id_needed = list(
        {u.recipient_id for u in updates if u.wamid not in by_wamid and u.recipient_id is not None}
    )
    by_id = {r["id"]: r for r in await _delivery_rows(tx, "id", by_id_needed)}
    plans: dict[int, _Plan] = {}
    # First decide every change in memory (statuses of one row in this batch chain: delivered then read) …
    for u in sorted(updates, key=lambda u: u.at):
        row = by_wamid.get(u.wamid)
        proven = False  # matched by an attempt's callback data on a re-queued (PENDING) row
        if row is None and u.recipient_id is not None:
            cand = by_id.get(u.recipient_id)
            if cand is not None:
                cand_status = RecipientStatus(cand["status"])
                verdict = match_by_callback(cand_status, cand["wamid"], int(cand["attempts"] or 0), u)
                if verdict == "stale":
                    log.debug("status %s of an earlier attempt of recipient %s ignored", u.status, cand["id"])
                    ignored += 1
                    continue
                if verdict == "match":
                    row = cand
                    proven = u.attempt is not None and cand_status == R.PENDING
        if row is None:
            unmatched.append(u)
            continue
        current = RecipientStatus(row["status"])
        target = delivery_target(current, u.status)
        if target is None and proven and current == R.PENDING:
            target = _DELIVERY_STATUS.get(u.status)  # re-queued, but an earlier attempt went out: not again
        if target is None and u.pricing is not None and row["pricing_category"] is None:
            # A repeated or overtaken status (delivered after read) still brings the pricing the applied one
            # lacked: stored without a status change (a plan from the current status to itself).
            _plan_for(plans, row, current).values.update(status=current, **pricing_values(u.pricing))
            row["pricing_category"] = u.pricing.category
        if target is None:
            if u.status == "failed" and current in (R.DELIVERED, R.READ):
                failed_late += 1
                log.warning(
                    "failed status after %s for recipient %s ignored (wamid %s)",
                    current.value,
                    row["id"],
                    u.wamid,
                )
            ignored += 1
            continue
        values: dict[str, Any] = {"status": target}
        if row["wamid"] != u.wamid:
            values["wamid"] = u.wamid
        if target == R.DELIVERED:
            values["delivered_at"] = u.at
        elif target == R.READ:
            values["read_at"] = u.at
        elif target == R.FAILED:
            values.update(failed_at=u.at, error_code=u.error_code, error_text=u.error_text)
        if current in (R.SENDING, R.UNKNOWN, R.PENDING) and target != R.FAILED:
            values["sent_at"] = u.at
        if current == R.SENDING:
            values.update(lease_owner=None, lease_expires_at=None)
        elif current == R.PENDING:
            values.update(lease_owner=None, lease_expires_at=None, next_attempt_at=None)
        if u.pricing is not None:
            values.update(pricing_values(u.pricing))
            row["pricing_category"] = u.pricing.category or row["pricing_category"]
        _plan_for(plans, row, current).values.update(values)
        applied += 1
        row["status"] = target.value
        row["wamid"] = u.wamid
        by_wamid[u.wamid] = row
        if target == R.FAILED:
            failures[row["blast_id"]] += 1
            codes[row["blast_id"]][u.error_code] += 1
    # … then write them, each row conditional on the stored status it was planned from.
    billable: list[tuple[str, str]] = []
    for plan in plans.values():
        deltas[plan.blast_id][plan.source] -= 1
        deltas[plan.blast_id][RecipientStatus(plan.values["status"])] += 1
        if _newly_billable(plan):
            category = plan.values.get("pricing_category") or plan.row["stored_category"]
            billable.append((str(category or "unknown"), str(plan.row["phone"])))
    write = _write_plans_pg if tx.capabilities.dialect == "postgres" else _write_plans_grouped
    written = await write(plans, utcnow(), tx)
    if written != len(plans):
        # Cannot happen while the rows are locked (PostgreSQL) or the database has one writer (SQLite); rolling
        # back lets the caller retry the whole batch instead of writing wrong counters.
        raise InvalidTransition(
            f"{len(plans) - written} recipients changed status while their webhook statuses were applied"
        )
    await apply_counter_deltas(deltas, tx)
    return DeliveryResult(
        applied,
        ignored,
        unmatched,
        failed_late,
        dict(failures),
        {b: dict(c) for b, c in codes.items()},
        billable,
    )


_DELIVERED = frozenset((R.DELIVERED, R.READ))


def _plan_for(plans: dict[int, _Plan], row: dict[str, Any], current: RecipientStatus) -> _Plan:
    plan = plans.get(row["id"])
    if plan is None:
        stored = {
            "status": current,
            "phone": row["phone"],
            "stored_category": row["pricing_category"],
            "stored_billable": row["billable"],
        }
        plan = plans[row["id"]] = _Plan(row["blast_id"], current, {}, stored)
    return plan


def _newly_billable(plan: _Plan) -> bool:
    """Whether the plan makes its row a billable delivery it was not before (so each one is counted once)."""
    was = plan.row["status"] in _DELIVERED and bool(plan.row["stored_billable"])
    billable = plan.values.get("billable", plan.row["stored_billable"])
    return not was and RecipientStatus(plan.values["status"]) in _DELIVERED and bool(billable)


#: Columns a delivery plan sets to a value (never to NULL): kept as they are where the plan leaves them out.
_PLAN_VALUE_COLUMNS = ("wamid", "sent_at", "delivered_at", "read_at", "failed_at", *PRICING_COLUMNS)
_PLAN_KEYS = frozenset(
    (
        "status",
        *_PLAN_VALUE_COLUMNS,
        "error_code",
        "error_text",
        "lease_owner",
        "lease_expires_at",
        "next_attempt_at",
    )
)
_WRITE_PLANS_PG = """
UPDATE recipient AS r SET
    status = v.status,
    wamid = COALESCE(v.wamid, r.wamid),
    sent_at = COALESCE(v.sent_at, r.sent_at),
    delivered_at = COALESCE(v.delivered_at, r.delivered_at),
    read_at = COALESCE(v.read_at, r.read_at),
    failed_at = COALESCE(v.failed_at, r.failed_at),
    pricing_category = COALESCE(v.pricing_category, r.pricing_category),
    pricing_type = COALESCE(v.pricing_type, r.pricing_type),
    pricing_model = COALESCE(v.pricing_model, r.pricing_model),
    billable = COALESCE(v.billable, r.billable),
    error_code = CASE WHEN v.set_error THEN v.error_code ELSE r.error_code END,
    error_text = CASE WHEN v.set_error THEN v.error_text ELSE r.error_text END,
    lease_owner = CASE WHEN v.clear_lease THEN NULL ELSE r.lease_owner END,
    lease_expires_at = CASE WHEN v.clear_lease THEN NULL ELSE r.lease_expires_at END,
    next_attempt_at = CASE WHEN v.clear_retry THEN NULL ELSE r.next_attempt_at END,
    updated_at = $18
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
            $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::bool[],
            $13::bool[], $14::int[], $15::text[], $16::bool[], $17::bool[])
    AS v(id, source, status, wamid, sent_at, delivered_at, read_at, failed_at, pricing_category, pricing_type,
         pricing_model, billable, set_error, error_code, error_text, clear_lease, clear_retry)
WHERE r.id = v.id AND r.status = v.source
"""


async def _write_plans_grouped(plans: Mapping[int, _Plan], now: datetime, tx: BaseDBAsyncClient) -> int:
    """Write planned row changes with one UPDATE per (stored status, values) group; returns the rows written."""
    groups: dict[tuple[RecipientStatus, tuple[tuple[str, Any], ...]], list[int]] = defaultdict(list)
    for rid, plan in plans.items():
        groups[(plan.source, tuple(sorted(plan.values.items())))].append(rid)
    written = 0
    for (source, items), ids in groups.items():
        for start in range(0, len(ids), 1000):
            part = ids[start : start + 1000]
            query = Recipient.filter(id__in=part, status=source).using_db(tx)
            written += await query.update(**dict(items), updated_at=now)
    return written


async def _write_plans_pg(plans: Mapping[int, _Plan], now: datetime, tx: BaseDBAsyncClient) -> int:
    """Write every planned row change in one UPDATE ... FROM unnest(...) (PostgreSQL): one statement, one plan,
    whatever mix of statuses and timestamps the batch holds. Returns the rows written.
    """
    ids = sorted(plans)
    columns: list[list[Any]] = [[] for _ in range(17)]
    for rid in ids:
        plan = plans[rid]
        values = plan.values
        unexpected = values.keys() - _PLAN_KEYS
        if unexpected:
            raise ValueError(f"delivery plan sets unexpected columns: {sorted(unexpected)}")
        row = (
            rid,
            plan.source.value,
            RecipientStatus(values["status"]).value,
            *(values.get(c) for c in _PLAN_VALUE_COLUMNS),
            "error_code" in values or "error_text" in values,
            values.get("error_code"),
            values.get("error_text"),
            "lease_owner" in values or "lease_expires_at" in values,
            "next_attempt_at" in values,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    written, _ = await tx.execute_query(_WRITE_PLANS_PG, [*columns, now])
    return int(written)


async def get_blast(blast_id: int) -> Blast:
    blast = await Blast.get_or_none(id=blast_id)
    if blast is None:
        raise NotFound(f"blast {blast_id} does not exist")
    return blast
