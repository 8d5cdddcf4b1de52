"""Provides recipient reads for both programs: keyset pages of one blast, failures grouped by Meta code, a
phone number across all blasts, and a streamed export. Nothing here loads a whole blast into memory.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tortoise import connections

from shared.config import Settings
from shared.errors import NotFound, ValidationFailed
from shared.models import Blast, Recipient
from shared.parsing.phones import normalize_phone
from shared.status import RecipientStatus
from shared.whatsapp.errors import rule_for

R = RecipientStatus

#: Rows per page of the console's recipient list and of the export.
PAGE_SIZE = 100
EXPORT_PAGE = 5000


@dataclass(frozen=True, slots=True)
class RecipientRow:
    id: int
    row: int
    phone: str
    status: RecipientStatus
    attempts: int
    wamid: str | None
    error_code: int | None
    error_text: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    #: Meta's pricing of the message (status webhooks): category, type, and whether it is billable.
    pricing_category: str | None = None
    pricing_type: str | None = None
    billable: bool | None = None


@dataclass(frozen=True, slots=True)
class RecipientPage:
    rows: list[RecipientRow]
    #: Give this as `after_id` for the next page; None when this page is the last.
    next_after_id: int | None


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    code: int | None
    count: int
    meaning: str
    #: One stored error text of this code, as Meta wrote it.
    sample: str | None


@dataclass(frozen=True, slots=True)
class PhoneHit:
    blast_id: int
    blast_name: str
    template: str
    language: str
    blast_status: str
    status: RecipientStatus
    wamid: str | None
    error_code: int | None
    error_text: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    updated_at: datetime


#: The columns of `blast export --csv`, in order: a RecipientRow without its id.
EXPORT_FIELDS = (
    "row",
    "phone",
    "status",
    "attempts",
    "wamid",
    "error_code",
    "error_text",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "pricing_category",
    "pricing_type",
    "billable",
)
_ROW_FIELDS = ("id", *EXPORT_FIELDS)


def export_values(r: RecipientRow) -> list[object]:
    """A row's EXPORT_FIELDS as CSV cells: enums by value, times in ISO 8601, missing values empty."""
    out: list[object] = []
    for name in EXPORT_FIELDS:
        value = getattr(r, name)
        if isinstance(value, RecipientStatus):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        out.append("" if value is None else value)
    return out


def _row(values: Sequence[Any]) -> RecipientRow:
    (
        rid,
        row,
        phone,
        status,
        attempts,
        wamid,
        code,
        text,
        sent,
        delivered,
        read,
        failed,
        category,
        kind,
        billable,
    ) = values
    return RecipientRow(
        id=int(rid),
        row=int(row),
        phone=str(phone),
        status=R(status),
        attempts=int(attempts),
        wamid=wamid,
        error_code=code,
        error_text=text,
        sent_at=sent,
        delivered_at=delivered,
        read_at=read,
        failed_at=failed,
        pricing_category=category,
        pricing_type=kind,
        billable=None if billable is None else bool(billable),
    )


async def _require_blast(blast_id: int) -> None:
    if not await Blast.exists(id=blast_id):
        raise NotFound(f"blast {blast_id} does not exist")


async def page_recipients(
    blast_id: int,
    *,
    statuses: Sequence[RecipientStatus] | None = None,
    after_id: int = 0,
    limit: int = PAGE_SIZE,
) -> RecipientPage:
    """One page of a blast's recipients in id order (keyset paging: each page costs the same at any depth).

    Every query is a range scan of the (blast_id, status, id) index: one per status asked for (all of them
    when `statuses` is empty), merged here by id. A single `status IN (...) ORDER BY id` would make the
    database sort every matching row first (a million for a big blast's "all" page).

    Raises:
        NotFound: no blast with that id.
    """
    await _require_blast(blast_id)
    wanted = _wanted(statuses)
    if len(wanted) == 1:
        query = Recipient.filter(blast_id=blast_id, status=wanted[0], id__gt=after_id)
    else:
        # Index-only scans for the ids (one per status, merged), then the page's rows by primary key.
        ids = await _merged_ids(blast_id, wanted, limit + 1, after_id=after_id)
        query = Recipient.filter(id__in=ids)
    rows = await query.order_by("id").limit(limit + 1).values_list(*_ROW_FIELDS)
    page = [_row(r) for r in rows[:limit]]
    return RecipientPage(rows=page, next_after_id=page[-1].id if len(rows) > limit else None)


async def page_before(
    blast_id: int,
    *,
    statuses: Sequence[RecipientStatus] | None = None,
    before_id: int,
    limit: int = PAGE_SIZE,
) -> int:
    """The `after_id` that shows the page ending just before `before_id` (for paging backwards)."""
    ids = await _merged_ids(blast_id, _wanted(statuses), limit + 1, before_id=before_id)
    return ids[limit] if len(ids) > limit else 0


def _wanted(statuses: Sequence[RecipientStatus] | None) -> list[RecipientStatus]:
    """The statuses asked for, each once; all of them when none is given."""
    return list(dict.fromkeys(statuses)) if statuses else list(RecipientStatus)


async def _merged_ids(
    blast_id: int,
    statuses: Sequence[RecipientStatus],
    n: int,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
) -> list[int]:
    """The first `n` recipient ids of these statuses after `after_id` (ascending), or before `before_id`
    (descending): one index range scan per status, merged."""
    forward = before_id is None
    bound = {"id__gt": after_id or 0} if forward else {"id__lt": before_id}
    parts = [
        await Recipient.filter(blast_id=blast_id, status=status, **bound)
        .order_by("id" if forward else "-id")
        .limit(n)
        .values_list("id", flat=True)
        for status in statuses
    ]
    return [int(cast(int, i)) for i in heapq.merge(*parts, reverse=not forward)][:n]


#: errors_by_code looks at most at this many FAILED recipients of a blast (its first ones, in id order).
ERRORS_SCAN_MAX = 100_000


async def errors_by_code(
    blast_id: int, *, limit: int = 20, scan_max: int = ERRORS_SCAN_MAX
) -> list[ErrorGroup]:
    """A blast's FAILED recipients grouped by Meta's error code, most frequent first, with their meaning.

    One bounded aggregate: it reads at most `scan_max` failures (a range of the (blast_id, status, id) index), so
    a blast with millions of failures costs the same as one with `scan_max`; the counts are then those of the
    first `scan_max` failures.
    """
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"

    def mark(n: int) -> str:
        return f"${n}" if pg else "?"

    sql = (
        "SELECT error_code, COUNT(*) AS n, MIN(error_text) AS sample FROM ("
        "SELECT error_code, error_text FROM recipient "
        f"WHERE blast_id = {mark(1)} AND status = {mark(2)} ORDER BY id LIMIT {mark(3)}"
        f") AS failed GROUP BY error_code ORDER BY n DESC, error_code LIMIT {mark(4)}"
    )
    _, rows = await conn.execute_query(sql, [blast_id, R.FAILED.value, scan_max, limit])
    out: list[ErrorGroup] = []
    for row in rows:
        code, n, sample = row["error_code"], row["n"], row["sample"]
        code = int(code) if code is not None else None
        meaning = rule_for(code, None).meaning if code is not None else "no error code (see the text)"
        out.append(
            ErrorGroup(code=code, count=int(n), meaning=meaning, sample=str(sample) if sample else None)
        )
    return out


def normalize_query_phone(phone: str, settings: Settings) -> str:
    """The E.164 form of a number an operator typed.

    Raises:
        ValidationFailed: not a phone number (the message says why).
    """
    try:
        return normalize_phone(phone, settings.BLAST_DEFAULT_REGION)
    except ValueError as exc:
        raise ValidationFailed(f"{phone!r} is not a phone number: {exc}") from None


async def search_phone(phone: str, *, settings: Settings, limit: int = 200) -> list[PhoneHit]:
    """What was sent to one number across all blasts, newest first.

    Raises:
        ValidationFailed: the text is not a phone number.
    """
    e164 = normalize_query_phone(phone, settings)
    rows = await Recipient.filter(phone=e164).select_related("blast__template").order_by("-id").limit(limit)
    return [
        PhoneHit(
            blast_id=r.blast.id,
            blast_name=r.blast.name,
            template=r.blast.template.name,
            language=r.blast.template.language,
            blast_status=str(getattr(r.blast.status, "value", r.blast.status)),
            status=R(r.status),
            wamid=r.wamid,
            error_code=r.error_code,
            error_text=r.error_text,
            sent_at=r.sent_at,
            delivered_at=r.delivered_at,
            read_at=r.read_at,
            failed_at=r.failed_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


async def export_recipients(
    blast_id: int, *, statuses: Sequence[RecipientStatus] | None = None, page_size: int = EXPORT_PAGE
) -> AsyncIterator[list[RecipientRow]]:
    """A blast's recipients page by page, for CSV export (memory stays flat at any size).

    Raises:
        NotFound: no blast with that id (raised by the first iteration).
    """
    after = 0
    while True:
        page = await page_recipients(blast_id, statuses=statuses, after_id=after, limit=page_size)
        if page.rows:
            yield page.rows
        if page.next_after_id is None:
            return
        after = page.next_after_id
