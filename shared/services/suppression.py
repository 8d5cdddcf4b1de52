"""Provides the suppression list: numbers that must not be sent to (opted out by their owner, or added by an
operator). The sender skips them; the console lists, searches, adds, removes and imports them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from shared import metrics
from shared.errors import CsvError, NotFound, ValidationFailed
from shared.models import Suppression
from shared.parsing.phones import mask_phone, normalize_phone
from shared.services import transitions
from shared.whatsapp import errors as meta_errors

log = logging.getLogger(__name__)

#: Sources of an entry: an operator, or the owner of the number through one of Meta's channels.
SOURCE_OPERATOR = "operator"
SOURCE_IMPORT = "import"
SOURCE_OPT_OUT_131050 = "opt_out_131050"
OPT_OUT_SOURCES = frozenset({SOURCE_OPT_OUT_131050, "user_preferences", "quick_reply", "keyword"})
#: Rows inserted per statement while importing.
IMPORT_BATCH = 1000
MAX_REJECTED_LISTED = 1000


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    phone: str
    reason: str
    source: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    entries: list[SuppressionEntry]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    already: int
    rejected: list[tuple[int, str, str]]  # (row, value, reason)
    rejected_total: int


def _entry(s: Suppression) -> SuppressionEntry:
    return SuppressionEntry(phone=s.phone, reason=s.reason, source=s.source, created_at=s.created_at)


def wa_id_to_phone(wa_id: str) -> str | None:
    """The E.164 number of a WhatsApp id ("6281234567890" -> "+6281234567890"), or None if it is not one."""
    digits = wa_id.strip().lstrip("+")
    if not digits.isascii() or not digits.isdigit() or not 6 <= len(digits) <= 15:
        return None
    return "+" + digits


async def list_suppressions(*, text: str | None = None, limit: int = 100, offset: int = 0) -> SuppressionPage:
    """A page of the list, newest first; `text` filters on digits of the number or words of the reason."""
    query = Suppression.all()
    if text and text.strip():
        needle = text.strip()
        digits = "".join(ch for ch in needle if ch.isdigit())
        from tortoise.expressions import Q

        cond = Q(reason__icontains=needle) | Q(source__icontains=needle)
        if digits:
            cond |= Q(phone__contains=digits)
        query = query.filter(cond)
    total = await query.count()
    rows = await query.order_by("-created_at", "phone").offset(max(0, offset)).limit(max(1, limit))
    return SuppressionPage([_entry(r) for r in rows], total, offset, limit)


async def is_suppressed(phones: Iterable[str], *, conn: BaseDBAsyncClient | None = None) -> set[str]:
    """Which of these E.164 numbers are on the list (one query per 1000 numbers)."""
    wanted = list(dict.fromkeys(phones))
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):
        part = wanted[start : start + 1000]
        rows = await Suppression.filter(phone__in=part).using_db(conn).values_list("phone", flat=True)
        found.update(str(phone) for phone in rows)
    return found


async def suppress(
    phones: Sequence[str],
    *,
    reason: str,
    source: str,
    actor: str,
    conn: BaseDBAsyncClient | None = None,
) -> list[str]:
    """Add E.164 numbers that are not on the list yet (already listed ones keep their first reason).

    Returns:
        The numbers added.
    """
    wanted = list(dict.fromkeys(p for p in phones if p))
    if not wanted:
        return []

    async def run(tx: BaseDBAsyncClient) -> list[str]:
        existing = await is_suppressed(wanted, conn=tx)
        new = [p for p in wanted if p not in existing]
        if new:
            await Suppression.bulk_create(
                [Suppression(phone=p, reason=reason[:200], source=source[:32]) for p in new],
                using_db=tx,
                ignore_conflicts=True,
            )
            if len(new) <= 20:
                for phone in new:
                    await transitions.audit(
                        actor=actor,
                        action="suppress",
                        entity="phone",
                        entity_id=mask_phone(phone),
                        detail={"reason": reason[:200], "source": source},
                        conn=tx,
                    )
            else:
                await transitions.audit(
                    actor=actor,
                    action="suppress",
                    entity="phone",
                    entity_id=f"{len(new)} numbers",
                    detail={"reason": reason[:200], "source": source, "count": len(new)},
                    conn=tx,
                )
        return new

    if conn is not None:
        added = await run(conn)
    else:
        async with in_transaction() as tx:
            added = await run(tx)
    for phone in added[:20]:
        log.info("suppressed %s (%s: %s)", mask_phone(phone), source, reason)
    if len(added) > 20:
        log.info("suppressed %s numbers (%s: %s)", len(added), source, reason)
    return added


async def opt_out_131050(
    phones: Sequence[str], *, actor: str, conn: BaseDBAsyncClient | None = None
) -> list[str]:
    """Put numbers whose send failed with Meta's error 131050 on the list, as their owner's opt-out: with the
    source `remove_opt_out` lifts (and an operator's `remove`), an audit entry and the opt-out metric. The one
    way both the sender and the webhook applier record it.

    Returns:
        The numbers added.
    """
    added = await suppress(
        phones,
        reason=f"Meta error {meta_errors.OPT_OUT}: stopped marketing messages",
        source=SOURCE_OPT_OUT_131050,
        actor=actor,
        conn=conn,
    )
    if added:
        metrics.OPT_OUTS.labels(SOURCE_OPT_OUT_131050).inc(len(added))
    return added


async def add(
    phone: str, *, reason: str = "", actor: str, default_region: str | None = None
) -> SuppressionEntry:
    """Put one number on the list (an operator's action).

    Raises:
        ValidationFailed: the number cannot be read.
    """
    e164 = _normalize(phone, default_region)
    await suppress([e164], reason=reason or "added by operator", source=SOURCE_OPERATOR, actor=actor)
    row = await Suppression.get(phone=e164)
    return _entry(row)


async def remove(phone: str, *, actor: str, default_region: str | None = None) -> None:
    """Take a number off the list.

    Raises:
        ValidationFailed: the number cannot be read.
        NotFound: it is not on the list.
    """
    e164 = _normalize(phone, default_region)
    async with in_transaction() as tx:
        n = await Suppression.filter(phone=e164).using_db(tx).delete()
        if not n:
            raise NotFound(f"{mask_phone(e164)} is not on the suppression list")
        await transitions.audit(
            actor=actor, action="unsuppress", entity="phone", entity_id=mask_phone(e164), conn=tx
        )
    log.info("%s removed from the suppression list by %s", mask_phone(e164), actor)


async def remove_opt_out(phone: str, *, actor: str, conn: BaseDBAsyncClient | None = None) -> bool:
    """Undo an opt-out made by the number's owner (Meta's `resume` preference); operator entries stay."""
    n = await Suppression.filter(phone=phone, source__in=list(OPT_OUT_SOURCES)).using_db(conn).delete()
    if n:
        await transitions.audit(
            actor=actor,
            action="unsuppress",
            entity="phone",
            entity_id=mask_phone(phone),
            detail={"source": "user_preferences"},
            conn=conn,
        )
        log.info("%s opted in again (user_preferences)", mask_phone(phone))
    return bool(n)


def _normalize(phone: str, default_region: str | None) -> str:
    try:
        return normalize_phone(phone, default_region)
    except ValueError as exc:
        raise ValidationFailed(f"cannot read phone number {phone!r}: {exc}") from None


async def import_csv(
    path: str | Path, *, actor: str, reason: str = "imported", default_region: str | None = None
) -> ImportResult:
    """Add every number of a CSV file: the column named phone (or number, msisdn, wa_id), else the first one.

    Raises:
        CsvError: the file cannot be read.
    """
    try:
        text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CsvError(f"cannot read {path}: it is not UTF-8 text") from None
    added = already = rejected_total = 0
    rejected: list[tuple[int, str, str]] = []
    batch: list[str] = []

    async def flush() -> None:
        nonlocal added, already
        if batch:
            new = await suppress(batch, reason=reason, source=SOURCE_IMPORT, actor=actor)
            added += len(new)
            already += len(set(batch)) - len(new)
            batch.clear()

    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CsvError(f"cannot read {path}: {exc}") from None
    column, first = 0, 0
    if rows:
        names = [h.strip().lower() for h in rows[0]]
        for name in ("phone", "number", "msisdn", "wa_id", "phone_number"):
            if name in names:
                column, first = names.index(name), 1
                break
    for n, row in enumerate(rows[first:], start=1):
        value = row[column].strip() if len(row) > column else ""
        if not value:
            continue
        try:
            batch.append(normalize_phone(value, default_region))
        except ValueError as exc:
            rejected_total += 1
            if len(rejected) < MAX_REJECTED_LISTED:
                rejected.append((n, value, str(exc)))
            continue
        if len(batch) >= IMPORT_BATCH:
            await flush()
    await flush()
    return ImportResult(added, already, rejected, rejected_total)
