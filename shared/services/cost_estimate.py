"""Provides what a blast costs: the estimate before it is sent (recipients per market times the price of the
template's category, volume tiers continuing from the month-to-date count) and the actual cost after (billable
deliveries reported by Meta's status webhooks), at the card effective on the blast's date (shared.services.pricing).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tortoise import connections

from shared.clock import utcnow
from shared.errors import NotFound
from shared.models import Blast
from shared.services.pricing import TIERED_CATEGORIES, UNKNOWN_MARKET, RateCard, Tier, card_for, tiered_amount
from shared.status import BLAST_TERMINAL, BlastStatus, RecipientStatus
from shared.text import plural

log = logging.getLogger(__name__)
R = RecipientStatus

#: The estimate's assumptions, in one line.
ASSUMPTIONS = "if all are delivered; the category applied by Meta at send time may differ"
NO_CARD = "no rate card imported"
#: Recipient statuses an estimate counts (will be or were sent); failed, cancelled and skipped ones are not.
ESTIMATED = (R.PENDING, R.SENDING, R.SENT, R.DELIVERED, R.READ, R.UNKNOWN)
DELIVERED = (R.DELIVERED, R.READ)


@dataclass(frozen=True, slots=True)
class CostLine:
    market: str
    category: str
    messages: int
    #: Price of one message; None when tiers give several prices (then `tiered`) or the market is not priced.
    price: Decimal | None
    #: Rounded to the currency's minor unit; None when the market has no price for the category.
    amount: Decimal | None
    tiered: bool = False


@dataclass(frozen=True, slots=True)
class Cost:
    """An estimate or an actual cost, in the card's currency."""

    kind: str  # estimate | actual
    card_id: int | None
    currency: str | None
    category: str
    lines: list[CostLine]
    messages: int
    #: Sum of the lines' amounts (None without a card).
    total: Decimal | None
    #: Messages with no price: numbers of no market in the card, or a market without the category.
    unpriced: int
    #: One line: the assumptions (estimate) or what the figures are (actual); "no rate card imported" without one.
    note: str
    #: The template's category change Meta made, when it did ("UTILITY -> MARKETING").
    category_change: str | None = None
    minor_unit: int = 2

    def fmt(self, amount: Decimal | None) -> str:
        if amount is None:
            return "—"
        return f"{self.currency} {amount:,.{self.minor_unit}f}"

    def to_json(self) -> dict[str, Any]:
        return {
            "card_id": self.card_id,
            "currency": self.currency,
            "category": self.category,
            "messages": self.messages,
            "total": None if self.total is None else str(self.total),
            "unpriced": self.unpriced,
            "note": self.note,
            "lines": [
                {
                    "market": line.market,
                    "category": line.category,
                    "messages": line.messages,
                    "price": None if line.price is None else str(line.price),
                    "amount": None if line.amount is None else str(line.amount),
                    "tiered": line.tiered,
                }
                for line in self.lines
            ],
        }


def price_counts(
    card: RateCard | None,
    counts: Mapping[tuple[str, str], int],
    *,
    kind: str,
    category: str,
    already: Mapping[tuple[str, str], int] | None = None,
    note: str,
) -> Cost:
    """Price message counts per (market, category) with a card; `already` = month-to-date counts for the tiers."""
    messages = sum(counts.values())
    if card is None:
        lines = [CostLine(m, c, n, None, None) for (m, c), n in sorted(counts.items())]
        return Cost(kind, None, None, category, lines, messages, None, messages, NO_CARD)
    lines = []
    total = Decimal(0)
    unpriced = 0
    for (market, cat), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        tiers = card.tiers.get((market, cat))
        rate = card.rates.get(market, {}).get(cat)
        if tiers:
            exact = tiered_amount(tiers, (already or {}).get((market, cat), 0), n)
            amount = card.round(exact)
            prices = {t.rate for t in tiers if _overlaps(t, (already or {}).get((market, cat), 0), n)}
            price = next(iter(prices)) if len(prices) == 1 else None
            lines.append(CostLine(market, cat, n, price, amount, tiered=len(prices) > 1))
            total += amount
        elif rate is not None:
            amount = card.round(rate * n)
            lines.append(CostLine(market, cat, n, rate, amount))
            total += amount
        else:
            lines.append(CostLine(market, cat, n, None, None))
            unpriced += n
    total = card.round(total)  # a sum of rounded amounts: only the exponent of an empty sum changes
    return Cost(
        kind, card.id, card.currency, category, lines, messages, total, unpriced, note, None, card.minor_unit
    )


def _overlaps(tier: Tier, already: int, count: int) -> bool:
    first, last = already + 1, already + count
    return tier.volume_from <= last and (tier.volume_to is None or tier.volume_to >= first)


def _mark(pg: bool, n: int) -> str:
    return f"${n}" if pg else "?"


async def _prefix_counts(
    where: str, params: list[Any], prefix_len: int, extra: str = ""
) -> list[dict[str, Any]]:
    """Recipients grouped by the first `prefix_len` digits of their number (one GROUP BY, no rows loaded)."""
    conn = connections.get("default")
    length = max(prefix_len, 1)
    sql = (
        f"SELECT substr(r.phone, 2, {length}) AS prefix, {extra or 'NULL'} AS cat, COUNT(*) AS n "
        f"FROM recipient r WHERE {where} GROUP BY 1, 2"
    )
    _, rows = await conn.execute_query(sql, params)
    return [dict(r) for r in rows]


def _by_market(
    card: RateCard | None, rows: Iterable[Mapping[str, Any]], category: str | None
) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for r in rows:
        market = card.market_of(str(r["prefix"])) if card is not None else None
        cat = category if category is not None else str(r.get("cat") or UNKNOWN_MARKET)
        out[(market or UNKNOWN_MARKET, cat)] += int(r["n"])
    return out


def _month_start(on: date) -> datetime:
    return datetime(on.year, on.month, 1, tzinfo=UTC)


async def month_to_date(card: RateCard, category: str, on: date) -> Counter[tuple[str, str]]:
    """Billable deliveries of `category` per market so far in the month of `on` (0 for a future month): where
    the card tiers a category, an estimate continues from them. Only messages sent by blast are known here.
    """
    today = datetime.now(UTC).date()
    if (on.year, on.month) != (today.year, today.month) or category not in TIERED_CATEGORIES:
        return Counter()
    if not any(cat == category for _, cat in card.tiers):
        return Counter()
    pg = connections.get("default").capabilities.dialect == "postgres"
    where = (
        f"r.sent_at >= {_mark(pg, 1)} AND r.status IN ({_mark(pg, 2)}, {_mark(pg, 3)}) "
        f"AND r.billable = {_mark(pg, 4)} AND r.pricing_category = {_mark(pg, 5)}"
    )
    params = [_month_start(on), R.DELIVERED.value, R.READ.value, True, category]
    return _by_market(card, await _prefix_counts(where, params, card.prefix_len), category)


def _category_of(template_category: str) -> str:
    return template_category.strip().lower() or "utility"


async def estimate_blast(blast_id: int) -> Cost:
    """What a blast will cost if all its recipients still to send (and those sent) are delivered, at the card
    effective on its send date. Suppressed numbers still to send, failed, cancelled and skipped ones are not
    counted (invalid rows were never stored).

    Raises:
        NotFound: no such blast.
    """
    blast = await Blast.get_or_none(id=blast_id).select_related("template")
    if blast is None:
        raise NotFound(f"blast {blast_id} does not exist")
    on = (blast.send_at or blast.created_at or utcnow()).astimezone(UTC).date()
    card = await card_for(on)
    template = blast.template
    category = _category_of(template.category)
    pg = connections.get("default").capabilities.dialect == "postgres"
    marks = ", ".join(_mark(pg, i + 2) for i in range(len(ESTIMATED)))
    where = (
        f"r.blast_id = {_mark(pg, 1)} AND r.status IN ({marks}) AND NOT (r.status = {_mark(pg, len(ESTIMATED) + 2)} "
        "AND EXISTS (SELECT 1 FROM suppression s WHERE s.phone = r.phone))"
    )
    params: list[Any] = [blast_id, *(s.value for s in ESTIMATED), R.PENDING.value]
    rows = await _prefix_counts(where, params, card.prefix_len if card is not None else 1)
    counts = _by_market(card, rows, category)
    already = await month_to_date(card, category, on) if card is not None else None
    cost = price_counts(card, counts, kind="estimate", category=category, already=already, note=ASSUMPTIONS)
    if template.previous_category and BlastStatus(blast.status) not in BLAST_TERMINAL:
        changed = template.category_changed_at
        when = f" on {changed.astimezone(UTC).date().isoformat()}" if changed else ""
        cost = replace(cost, category_change=f"{template.previous_category} -> {template.category}{when}")
    return cost


async def estimate_numbers(*, category: str, numbers: Mapping[str, int], on: date) -> Cost:
    """The estimate of a recipients file before it is imported: `numbers` maps digit prefixes (or whole
    numbers) of its valid, unsuppressed rows to counts."""
    card = await card_for(on)
    cat = _category_of(category)
    counts: Counter[tuple[str, str]] = Counter()
    for prefix, n in numbers.items():
        market = card.market_of(prefix) if card is not None else None
        counts[(market or UNKNOWN_MARKET, cat)] += n
    already = await month_to_date(card, cat, on) if card is not None else None
    return price_counts(card, counts, kind="estimate", category=cat, already=already, note=ASSUMPTIONS)


ACTUAL_NOTE = "billable deliveries reported by Meta, at the card's base rates; tier discounts and Meta's invoice may differ"


async def actual_cost(blast_id: int) -> Cost:
    """What a blast cost so far: its recipients delivered (or read) with a billable pricing, per the category Meta
    applied and the market, at the card effective on its start date.

    Raises:
        NotFound: no such blast.
    """
    blast = await Blast.get_or_none(id=blast_id).select_related("template")
    if blast is None:
        raise NotFound(f"blast {blast_id} does not exist")
    on = (blast.started_at or blast.send_at or blast.created_at).astimezone(UTC).date()
    card = await card_for(on)
    pg = connections.get("default").capabilities.dialect == "postgres"
    where = (
        f"r.blast_id = {_mark(pg, 1)} AND r.status IN ({_mark(pg, 2)}, {_mark(pg, 3)}) "
        f"AND r.billable = {_mark(pg, 4)}"
    )
    params: list[Any] = [blast_id, R.DELIVERED.value, R.READ.value, True]
    rows = await _prefix_counts(
        where, params, card.prefix_len if card is not None else 1, "r.pricing_category"
    )
    counts = _by_market(card, rows, None)
    base = _base_rates(card) if card is not None else None
    return price_counts(
        base, counts, kind="actual", category=_category_of(blast.template.category), note=ACTUAL_NOTE
    )


def _base_rates(card: RateCard) -> RateCard:
    """The card with each tiered category at its first tier's rate."""
    rates = {m: dict(by) for m, by in card.rates.items()}
    for (market, category), tiers in card.tiers.items():
        if tiers:
            rates.setdefault(market, {})[category] = tiers[0].rate
    return RateCard(
        card.id,
        card.currency,
        card.minor_unit,
        card.effective_on,
        rates,
        card.markets,
        {},
        card.source,
        card.imported_at,
        card.imported_by,
        card.prefix_len,
    )


@dataclass(frozen=True, slots=True)
class BlastCost:
    estimate: Cost
    actual: Cost


async def blast_cost(blast_id: int) -> BlastCost:
    """The estimate and the actual cost of a blast, side by side."""
    return BlastCost(await estimate_blast(blast_id), await actual_cost(blast_id))


def summary_lines(cost: Cost, *, limit: int = 10) -> list[str]:
    """Plain-text lines of a cost for the CLI and the console: one per market, the total, the note."""
    title = "estimated cost" if cost.kind == "estimate" else "actual cost"
    if cost.card_id is None:
        return [f"{title}: {NO_CARD} (blast-console pricing import)"]
    out = [
        f"{title}: {cost.fmt(cost.total)} for {plural(cost.messages, 'message')} (rate card {cost.card_id})"
    ]
    for line in cost.lines[:limit]:
        what = f"{line.market} ({line.category})" if cost.kind == "actual" else line.market
        if line.amount is None:
            out.append(f"  {what}: {line.messages:,} (no price)")
            continue
        each = "tiered prices" if line.tiered else cost.fmt(line.price)
        out.append(f"  {what}: {line.messages:,} x {each} = {cost.fmt(line.amount)}")
    if len(cost.lines) > limit:
        out.append(f"  … and {len(cost.lines) - limit} more markets")
    if cost.unpriced:
        out.append(
            f"  {cost.unpriced:,} without a price: market not in the card, or category not offered there"
        )
    if cost.category_change:
        out.append(f"  template category changed by Meta: {cost.category_change}")
    out.append(f"  ({cost.note})")
    return out


__all__ = [
    "ASSUMPTIONS",
    "NO_CARD",
    "BlastCost",
    "Cost",
    "CostLine",
    "actual_cost",
    "blast_cost",
    "estimate_blast",
    "estimate_numbers",
    "summary_lines",
]
