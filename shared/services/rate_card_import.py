"""Provides the import of a rate card: the operator's CSV files (rates per market and category, the calling codes
of each market, volume tiers) validated whole, then stored as one dated card per currency; nothing is stored when
any row is wrong, and the error names the file, row and column.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from shared.clock import utcnow
from shared.errors import ValidationFailed
from shared.models import PriceCard
from shared.services import transitions
from shared.services.pricing import (
    CATEGORIES,
    TIERED_CATEGORIES,
    RateCard,
    Tier,
    card_from_row,
    forget_cached_card,
)
from shared.status import RecipientStatus

log = logging.getLogger(__name__)
R = RecipientStatus

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
_PRICE = re.compile(r"^\d{1,12}(\.\d{1,10})?$")
_NOT_OFFERED = frozenset(("", "n/a", "na", "-"))


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
            imported_at=utcnow(),
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
    return ImportResult(card_from_row(row), reused)
