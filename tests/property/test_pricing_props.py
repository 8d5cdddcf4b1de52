"""Provides property tests of pricing: a rate table written as CSV parses back exactly (Decimal, any delimiter
and header spelling), the longest calling code wins, and tiered amounts add up however a month is split."""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.services.pricing import CATEGORIES, Tier, market_of, tiered_amount
from shared.services.rate_card_import import parse_rates

SETTINGS = settings(
    max_examples=int(os.environ.get("BLAST_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PRICES = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False)
MARKETS = (
    st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=30).map(str.strip).filter(bool)
)


@SETTINGS
@given(
    table=st.dictionaries(
        MARKETS, st.dictionaries(st.sampled_from(CATEGORIES), PRICES), min_size=1, max_size=8
    ),
    delimiter=st.sampled_from([",", ";"]),
    upper=st.booleans(),
)
def test_a_rate_table_round_trips_through_csv(
    tmp_path_factory: object, table: dict[str, dict[str, Decimal]], delimiter: str, upper: bool
) -> None:
    columns = list(CATEGORIES)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter)
    header = ["Market", *(c.replace("_", "-").title() if upper else c for c in columns)]
    writer.writerow(header)
    for market, prices in table.items():
        writer.writerow([market, *(str(prices[c]) if c in prices else "" for c in columns)])
    assert hasattr(tmp_path_factory, "mktemp")
    path = Path(tmp_path_factory.mktemp("rates")) / "rates.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    assert parse_rates(path, currency="IDR") == table


@SETTINGS
@given(
    codes=st.dictionaries(
        st.text("0123456789", min_size=1, max_size=4), st.sampled_from("ABCDEF"), max_size=12
    ),
    number=st.text("0123456789", min_size=0, max_size=12),
)
def test_the_longest_calling_code_wins(codes: dict[str, str], number: str) -> None:
    matching = [c for c in codes if number.startswith(c)]
    expected = codes[max(matching, key=len)] if matching else None
    assert market_of("+" + number, codes) == expected
    assert market_of(number, codes) == expected


@SETTINGS
@given(
    bounds=st.lists(st.integers(1, 50), min_size=1, max_size=4),
    rates=st.lists(PRICES, min_size=5, max_size=5),
    already=st.integers(0, 300),
    parts=st.lists(st.integers(0, 60), min_size=1, max_size=5),
)
def test_tiered_amounts_add_up_however_the_month_is_split(
    bounds: list[int], rates: list[Decimal], already: int, parts: list[int]
) -> None:
    tiers: list[Tier] = []
    start = 1
    for i, width in enumerate(bounds):
        tiers.append(Tier(start, start + width - 1, rates[i]))
        start += width
    tiers.append(Tier(start, None, rates[len(bounds)]))
    whole = tiered_amount(tiers, already, sum(parts))
    split = Decimal(0)
    done = already
    for n in parts:
        split += tiered_amount(tiers, done, n)
        done += n
    assert whole == split
    # message by message, each at the rate of its tier
    one_by_one = sum(
        (next(t.rate for t in tiers if t.volume_from <= k and (t.volume_to is None or k <= t.volume_to)))
        for k in range(already + 1, already + sum(parts) + 1)
    )
    assert whole == one_by_one
