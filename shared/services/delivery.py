"""Provides delivery statuses (Meta's status webhooks) applied to recipients: which status a webhook may move a
recipient to (only forward), which attempt it belongs to (callback data), the pricing it carries, and the set-based
write of a batch of them with the blast counters. The webhook applier (`shared.services.webhooks`) is its caller.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from shared.clock import utcnow
from shared.errors import InvalidTransition
from shared.models import Recipient
from shared.services.transitions import apply_counter_deltas
from shared.status import DELIVERY_RANK, RecipientStatus

log = logging.getLogger(__name__)
R = RecipientStatus

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


def pricing_values(p: Pricing) -> Mapping[str, Any]:
    """A Pricing as recipient column values (None where Meta said nothing, so a stored value is kept).

    Read-only and shared: the few pricing objects Meta sends repeat on every status (the parser hands out one
    Pricing per distinct object), so each one's values are built once.
    """
    found = _PRICING_VALUES.get(p)
    if found is None:
        if len(_PRICING_VALUES) >= 4096:
            _PRICING_VALUES.clear()
        values = (p.category, p.type, p.model, p.billable)
        found = MappingProxyType(
            {k: v for k, v in zip(PRICING_COLUMNS, values, strict=True) if v is not None}
        )
        _PRICING_VALUES[p] = found
    return found


_PRICING_VALUES: dict[Pricing, Mapping[str, Any]] = {}


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
