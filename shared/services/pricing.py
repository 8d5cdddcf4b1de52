"""Provides Meta's rate cards as the other pricing modules read them: the dated card (rates per market and
category, the calling codes of each market, volume tiers), the market of a number (its longest calling-code
prefix: +1 809 before +1), tiered amounts, and the billable-delivery metric the webhook applier counts.

Money is Decimal (never float), rounded to the card's currency minor unit only for amounts shown. The code ships
no prices: cards are data, imported by the operator (shared.services.rate_card_import). What a blast costs, before
and after it is sent, is shared.services.cost_estimate.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from shared import metrics
from shared.models import PriceCard
from shared.status import RecipientStatus

log = logging.getLogger(__name__)
R = RecipientStatus

#: Template categories a card may price (Meta's rate card columns).
CATEGORIES = ("marketing", "utility", "authentication", "authentication_international")
#: Categories with monthly volume tiers at Meta.
TIERED_CATEGORIES = frozenset(("utility", "authentication", "authentication_international"))
UNKNOWN_MARKET = "unknown"


# --------------------------------------------------------------------------------------------------------------
# the card
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tier:
    """Messages number `volume_from` to `volume_to` (1-based, inclusive; None = no limit) of a calendar month, in
    one market and category, cost `rate` each."""

    volume_from: int
    volume_to: int | None
    rate: Decimal


@dataclass(frozen=True, slots=True)
class RateCard:
    id: int
    currency: str
    minor_unit: int
    effective_on: date
    #: market -> category -> rate per delivered message
    rates: dict[str, dict[str, Decimal]]
    #: calling-code prefix (digits) -> market
    markets: dict[str, str]
    #: (market, category) -> tiers in order
    tiers: dict[tuple[str, str], list[Tier]]
    source: str
    imported_at: datetime
    imported_by: str
    #: the longest prefix in `markets`
    prefix_len: int = 0

    def market_of(self, phone: str) -> str | None:
        """The market of an E.164 number (with or without +): its longest calling-code prefix in the card."""
        return market_of(phone, self.markets, self.prefix_len)

    def round(self, amount: Decimal) -> Decimal:
        """`amount` rounded (half up) to the currency's minor unit."""
        return round_money(amount, self.minor_unit)


def round_money(amount: Decimal, minor_unit: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit), rounding=ROUND_HALF_UP)


def market_of(phone: str, markets: Mapping[str, str], prefix_len: int | None = None) -> str | None:
    """The market of a number: the market of its longest calling-code prefix (so +1 809 wins over +1)."""
    digits = phone[1:] if phone.startswith("+") else phone
    longest = prefix_len if prefix_len is not None else max((len(p) for p in markets), default=0)
    for n in range(min(longest, len(digits)), 0, -1):
        market = markets.get(digits[:n])
        if market is not None:
            return market
    return None


def tiered_amount(tiers: Sequence[Tier], already: int, count: int) -> Decimal:
    """The price of `count` messages after `already` this month: messages already+1 … already+count, each at the
    rate of the tier its number falls in."""
    total = Decimal(0)
    first, last = already + 1, already + count
    for tier in tiers:
        lo = max(first, tier.volume_from)
        hi = last if tier.volume_to is None else min(last, tier.volume_to)
        if hi >= lo:
            total += tier.rate * (hi - lo + 1)
    return total


def card_from_row(row: PriceCard) -> RateCard:
    tiers: dict[tuple[str, str], list[Tier]] = defaultdict(list)
    for t in row.tiers or []:
        tiers[(t["market"], t["category"])].append(
            Tier(
                int(t["volume_from"]),
                None if t["volume_to"] is None else int(t["volume_to"]),
                Decimal(t["rate"]),
            )
        )
    markets = {str(k): str(v) for k, v in (row.markets or {}).items()}
    return RateCard(
        id=row.id,
        currency=row.currency,
        minor_unit=row.minor_unit,
        effective_on=row.effective_on,
        rates={m: {c: Decimal(v) for c, v in by.items()} for m, by in (row.rates or {}).items()},
        markets=markets,
        tiers={k: sorted(v, key=lambda t: t.volume_from) for k, v in tiers.items()},
        source=row.source,
        imported_at=row.imported_at,
        imported_by=row.imported_by,
        prefix_len=max((len(p) for p in markets), default=0),
    )


async def card_for(on: date) -> RateCard | None:
    """The newest card effective on `on` (the latest effective date not after it; the last imported of equals)."""
    row = await PriceCard.filter(effective_on__lte=on).order_by("-effective_on", "-id").first()
    return card_from_row(row) if row is not None else None


async def list_cards() -> list[RateCard]:
    """Every imported card, newest effective date first."""
    return [card_from_row(r) for r in await PriceCard.all().order_by("-effective_on", "-id")]


_MARKETS_CACHE_S = 60.0
_markets_cache: tuple[float, RateCard | None] | None = None


async def _current_card() -> RateCard | None:
    """Today's card, cached for a minute (the webhook applier labels metrics with markets)."""
    global _markets_cache
    now = time.monotonic()
    if _markets_cache is None or now - _markets_cache[0] > _MARKETS_CACHE_S:
        _markets_cache = (now, await card_for(datetime.now(UTC).date()))
    return _markets_cache[1]


def forget_cached_card() -> None:
    """Make the next metrics label read today's card again (after an import; tests)."""
    global _markets_cache
    _markets_cache = None


async def count_billable(items: Iterable[tuple[str, str]]) -> None:
    """Add billable deliveries, (category, phone), to blast_billable_messages_total{category,market}."""
    card = await _current_card()
    tally: Counter[tuple[str, str]] = Counter()
    for category, phone in items:
        market = card.market_of(phone) if card is not None else None
        tally[(category, market or UNKNOWN_MARKET)] += 1
    for (category, market), n in tally.items():
        metrics.BILLABLE_MESSAGES.labels(category, market).inc(n)
