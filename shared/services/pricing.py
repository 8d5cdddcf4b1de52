"""Provides what a blast costs: Meta's rate cards imported from CSV (dated, per currency), the estimate of a blast
before it is sent (recipients per market times the price of the template's category, volume tiers from the
month-to-date count) and the actual cost after (billable deliveries reported by Meta's status webhooks).

Money is Decimal (never float), rounded to the card's currency minor unit only for amounts shown. The market of a
number is found from its calling code through the card's markets file: the longest prefix wins (+1 809 before +1).
The code ships no prices: cards are data, imported by the operator.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from shared import metrics
from shared.errors import NotFound, ValidationFailed
from shared.models import Blast, PriceCard
from shared.services import transitions
from shared.status import BLAST_TERMINAL, BlastStatus, RecipientStatus
from shared.text import plural

log = logging.getLogger(__name__)
R = RecipientStatus

#: Template categories a card may price (Meta's rate card columns).
CATEGORIES = ("marketing", "utility", "authentication", "authentication_international")
#: Categories with monthly volume tiers at Meta.
TIERED_CATEGORIES = frozenset(("utility", "authentication", "authentication_international"))
#: Columns of a rates file that are accepted and not stored (service conversations are free).
IGNORED_RATE_COLUMNS = frozenset(("service", "currency"))
#: ISO 4217 minor units of the currencies Meta publishes cards in (others: give --minor-unit).
MINOR_UNITS = {
    "AUD": 2,
    "BRL": 2,
    "EUR": 2,
    "GBP": 2,
    "IDR": 2,
    "INR": 2,
    "MXN": 2,
    "USD": 2,
    "JPY": 0,
    "KRW": 0,
}
#: The estimate's assumptions, in one line.
ASSUMPTIONS = "if all are delivered; the category applied by Meta at send time may differ"
NO_CARD = "no rate card imported"
UNKNOWN_MARKET = "unknown"
#: Recipient statuses an estimate counts (will be or were sent); failed, cancelled and skipped ones are not.
ESTIMATED = (R.PENDING, R.SENDING, R.SENT, R.DELIVERED, R.READ, R.UNKNOWN)
DELIVERED = (R.DELIVERED, R.READ)

_PRICE = re.compile(r"^\d{1,12}(\.\d{1,10})?$")
_NOT_OFFERED = frozenset(("", "n/a", "na", "-"))


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


def _card(row: PriceCard) -> RateCard:
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
    return _card(row) if row is not None else None


async def list_cards() -> list[RateCard]:
    """Every imported card, newest effective date first."""
    return [_card(r) for r in await PriceCard.all().order_by("-effective_on", "-id")]


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


# --------------------------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------------------------


def _header_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").strip().lower())


def _read_csv(path: str | Path, what: str) -> tuple[str, list[str], Iterator[tuple[int, dict[str, str]]]]:
    """(file name, normalised header, (row, {column: value}) with row 1 = the first data row)."""
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ValidationFailed(f"{what} file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"{what} file {path} cannot be read as UTF-8 text: {exc}") from exc
    try:
        dialect: Any = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = [_header_key(h) for h in next(reader)]
    except StopIteration as exc:
        raise ValidationFailed(f"{name} is empty: a header row is needed") from exc
    dupes = [h for h, n in Counter(header).items() if n > 1 and h]
    if dupes:
        raise ValidationFailed(f"{name}: column {dupes[0]!r} appears twice in the header")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for n, cells in enumerate(reader, start=1):
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) > len(header):
                    raise ValidationFailed(
                        f"{name} row {n}: {len(cells)} cells, the header has {len(header)}"
                    )
                yield n, {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        except csv.Error as exc:
            raise ValidationFailed(f"{name} row {reader.line_num}: not valid CSV ({exc})") from exc

    return name, header, rows()


def _price(name: str, row: int, column: str, value: str) -> Decimal | None:
    if value.lower() in _NOT_OFFERED:
        return None
    if not _PRICE.match(value):
        raise ValidationFailed(
            f"{name} row {row}, column {column}: {value!r} is not a price "
            "(digits with a decimal point, e.g. 0.0118; empty or n/a if not offered)"
        )
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid decimals
        raise ValidationFailed(f"{name} row {row}, column {column}: {value!r} is not a price") from exc


def parse_rates(path: str | Path, *, currency: str) -> dict[str, dict[str, Decimal]]:
    """RATES.csv: a `market` column and one column per category (marketing, utility, authentication,
    authentication_international); `currency` (must match) and `service` (free) columns are accepted.

    Raises:
        ValidationFailed: one line naming the file, row and column.
    """
    name, header, rows = _read_csv(path, "rates")
    if "market" not in header:
        raise ValidationFailed(
            f"{name}: no market column in the header (columns: market, {', '.join(CATEGORIES)})"
        )
    for h in header:
        if h and h != "market" and h not in CATEGORIES and h not in IGNORED_RATE_COLUMNS:
            raise ValidationFailed(
                f"{name}: column {h!r} is unknown (expected market, {', '.join(CATEGORIES)}, currency, service)"
            )
    categories = [h for h in header if h in CATEGORIES]
    if not categories:
        raise ValidationFailed(f"{name}: no price column (expected one of {', '.join(CATEGORIES)})")
    out: dict[str, dict[str, Decimal]] = {}
    for n, cells in rows:
        market = cells["market"]
        if not market:
            raise ValidationFailed(f"{name} row {n}, column market: empty")
        if len(market) > 64:
            raise ValidationFailed(f"{name} row {n}, column market: longer than 64 characters")
        if market in out:
            raise ValidationFailed(f"{name} row {n}, column market: {market!r} appears twice")
        if "currency" in cells and cells["currency"] and cells["currency"].upper() != currency:
            raise ValidationFailed(
                f"{name} row {n}, column currency: {cells['currency']!r}, but the card is imported as {currency}"
            )
        prices: dict[str, Decimal] = {}
        for c in categories:
            price = _price(name, n, c, cells[c])
            if price is not None:
                prices[c] = price
        out[market] = prices
    if not out:
        raise ValidationFailed(f"{name} has no rows: at least one market is needed")
    return out


def parse_markets(path: str | Path, *, markets: Iterable[str]) -> dict[str, str]:
    """MARKETS.csv: `calling_code` (digits, + and spaces allowed: "+1 809") and `market` (as in RATES.csv).

    Raises:
        ValidationFailed: one line naming the file, row and column.
    """
    known = set(markets)
    name, header, rows = _read_csv(path, "markets")
    for needed in ("calling_code", "market"):
        if needed not in header:
            raise ValidationFailed(
                f"{name}: no {needed} column in the header (columns: calling_code, market)"
            )
    out: dict[str, str] = {}
    for n, cells in rows:
        raw = cells["calling_code"]
        code = re.sub(r"[\s+]", "", raw)
        if not code.isascii() or not code.isdigit() or not 1 <= len(code) <= 6:
            raise ValidationFailed(
                f"{name} row {n}, column calling_code: {raw!r} is not a calling code (1 to 6 digits, e.g. 62 or +1 809)"
            )
        if code in out:
            raise ValidationFailed(f"{name} row {n}, column calling_code: {raw!r} appears twice")
        market = cells["market"]
        if market not in known:
            raise ValidationFailed(f"{name} row {n}, column market: {market!r} has no row in the rates file")
        out[code] = market
    if not out:
        raise ValidationFailed(f"{name} has no rows: at least one calling code is needed")
    return out


def parse_tiers(path: str | Path, *, rates: Mapping[str, Mapping[str, Decimal]]) -> list[dict[str, Any]]:
    """TIERS.csv: market, category (utility or authentication), volume_from, volume_to (1-based message numbers of
    the month, inclusive; empty = no limit), rate. The tiers of one market and category start at 1 and follow each
    other without gaps; only the last is open.

    Raises:
        ValidationFailed: one line naming the file, row and column.
    """
    name, header, rows = _read_csv(path, "tiers")
    columns = ("market", "category", "volume_from", "volume_to", "rate")
    for needed in columns:
        if needed not in header:
            raise ValidationFailed(
                f"{name}: no {needed} column in the header (columns: {', '.join(columns)})"
            )
    by_key: dict[tuple[str, str], list[tuple[int, Tier]]] = defaultdict(list)
    for n, cells in rows:
        market, category = cells["market"], cells["category"].lower()
        if market not in rates:
            raise ValidationFailed(f"{name} row {n}, column market: {market!r} has no row in the rates file")
        if category not in TIERED_CATEGORIES:
            raise ValidationFailed(
                f"{name} row {n}, column category: {cells['category']!r} has no volume tiers "
                f"(use {', '.join(sorted(TIERED_CATEGORIES))})"
            )
        bounds: list[int | None] = []
        for column in ("volume_from", "volume_to"):
            value = cells[column].replace("_", "")
            if column == "volume_to" and value == "":
                bounds.append(None)
                continue
            if not value.isascii() or not value.isdigit() or int(value) < 1:
                raise ValidationFailed(
                    f"{name} row {n}, column {column}: {cells[column]!r} is not a message number (1 or more)"
                )
            bounds.append(int(value))
        lo, hi = bounds
        assert lo is not None
        if hi is not None and hi < lo:
            raise ValidationFailed(f"{name} row {n}, column volume_to: {hi} is before volume_from {lo}")
        rate = _price(name, n, "rate", cells["rate"])
        if rate is None:
            raise ValidationFailed(f"{name} row {n}, column rate: empty (a tier needs a price)")
        by_key[(market, category)].append((n, Tier(lo, hi, rate)))
    out: list[dict[str, Any]] = []
    for (market, category), items in by_key.items():
        items.sort(key=lambda item: item[1].volume_from)
        expected: int | None = 1
        for n, tier in items:
            if expected is None:
                raise ValidationFailed(
                    f"{name} row {n}, column volume_from: {market} {category} already has an open last tier"
                )
            if tier.volume_from != expected:
                raise ValidationFailed(
                    f"{name} row {n}, column volume_from: {tier.volume_from}, but {market} {category} "
                    f"continues at {expected} (tiers start at 1 with no gaps or overlaps)"
                )
            expected = None if tier.volume_to is None else tier.volume_to + 1
            out.append(
                {
                    "market": market,
                    "category": category,
                    "volume_from": tier.volume_from,
                    "volume_to": tier.volume_to,
                    "rate": str(tier.rate),
                }
            )
    return out


def parse_effective(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(f"--effective {value!r} is not a date (YYYY-MM-DD, e.g. 2026-10-01)") from exc


def minor_unit_of(currency: str, given: int | None) -> int:
    if given is not None:
        if not 0 <= given <= 4:
            raise ValidationFailed(f"--minor-unit {given} is not 0 to 4 digits")
        return given
    unit = MINOR_UNITS.get(currency)
    if unit is None:
        raise ValidationFailed(
            f"currency {currency}: its minor unit is not known here; give --minor-unit (2 for cents, 0 for none)"
        )
    return unit


@dataclass(frozen=True, slots=True)
class ImportResult:
    card: RateCard
    #: True when the markets were taken over from the previous card (no --markets given).
    markets_reused_from: int | None


async def import_card(
    *,
    rates: str | Path,
    currency: str,
    effective: str,
    markets: str | Path | None = None,
    tiers: str | Path | None = None,
    minor_unit: int | None = None,
    actor: str,
) -> ImportResult:
    """Validate the files whole, then store one dated card (nothing is stored when any row is wrong).

    Without a markets file the calling codes of the newest card are reused (the first card needs one).

    Raises:
        ValidationFailed: a bad argument, file, row or cell (one line naming the file, row and column).
    """
    currency = currency.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationFailed(f"--currency {currency!r} is not an ISO 4217 code (three letters, e.g. IDR)")
    unit = minor_unit_of(currency, minor_unit)
    effective_on = parse_effective(effective)
    rate_table = parse_rates(rates, currency=currency)
    reused: int | None = None
    if markets is not None:
        market_map = parse_markets(markets, markets=rate_table)
    else:
        previous = await PriceCard.all().order_by("-imported_at", "-id").first()
        if previous is None:
            raise ValidationFailed("no markets file: give --markets MARKETS.csv (the first card needs one)")
        market_map = {str(k): str(v) for k, v in (previous.markets or {}).items()}
        missing = sorted({m for m in market_map.values() if m not in rate_table})
        if missing:
            raise ValidationFailed(
                f"the calling codes of card {previous.id} name market {missing[0]!r}, which has no row in "
                f"{Path(rates).name}: give --markets MARKETS.csv"
            )
        reused = previous.id
    tier_rows = parse_tiers(tiers, rates=rate_table) if tiers is not None else []
    source = ", ".join(Path(p).name for p in (rates, markets, tiers) if p is not None)
    async with in_transaction() as tx:
        row = await PriceCard.create(
            currency=currency,
            minor_unit=unit,
            effective_on=effective_on,
            rates={m: {c: str(v) for c, v in by.items()} for m, by in rate_table.items()},
            markets=market_map,
            tiers=tier_rows,
            source=source[:500],
            imported_at=transitions.utcnow(),
            imported_by=actor,
            using_db=tx,
        )
        await transitions.audit(
            actor=actor,
            action="import",
            entity="price_card",
            entity_id=row.id,
            conn=tx,
            detail={
                "currency": currency,
                "effective_on": effective_on.isoformat(),
                "markets": len(rate_table),
                "calling_codes": len(market_map),
                "tiers": len(tier_rows),
                "source": source,
            },
        )
    forget_cached_card()
    log.info(
        "rate card %s imported by %s: %s, effective %s, %s markets, %s calling codes, %s tiers",
        row.id,
        actor,
        currency,
        effective_on,
        len(rate_table),
        len(market_map),
        len(tier_rows),
    )
    return ImportResult(_card(row), reused)


# --------------------------------------------------------------------------------------------------------------
# estimate and actuals
# --------------------------------------------------------------------------------------------------------------


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
    on = (blast.send_at or blast.created_at or transitions.utcnow()).astimezone(UTC).date()
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
    "ImportResult",
    "RateCard",
    "Tier",
    "actual_cost",
    "blast_cost",
    "card_for",
    "count_billable",
    "estimate_blast",
    "estimate_numbers",
    "import_card",
    "list_cards",
    "market_of",
    "round_money",
    "summary_lines",
    "tiered_amount",
]
