"""Pricing: rate card import (validated whole, nothing half-imported), the market of a number (longest calling-code
prefix), tier arithmetic, rounding to the minor unit, and the estimate of a stored blast."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from shared.errors import ValidationFailed
from shared.models import AuditLog, PriceCard, Recipient, Suppression
from shared.services import cost_estimate, pricing, rate_card_import
from shared.services.pricing import Tier, market_of, round_money, tiered_amount
from shared.status import BlastStatus, RecipientStatus
from tests.factories import make_blast, make_template

DATA = Path(__file__).parent.parent / "data" / "pricing"
RATES = DATA / "sample-rates-idr.csv"
MARKETS = DATA / "sample-markets.csv"
TIERS = DATA / "sample-tiers-idr.csv"
R = RecipientStatus


async def import_sample(
    effective: str = "2026-01-01", *, tiers: bool = True
) -> rate_card_import.ImportResult:
    return await rate_card_import.import_card(
        rates=RATES,
        markets=MARKETS,
        tiers=TIERS if tiers else None,
        currency="IDR",
        effective=effective,
        actor="tester",
    )


# ------------------------------------------------------------------------------------------------------------
# pure
# ------------------------------------------------------------------------------------------------------------

SAMPLE_MARKETS = {"62": "Indonesia", "1": "North America", "1809": "Rest of Latin America", "44": "Other"}


@pytest.mark.parametrize(
    ("phone", "market"),
    [
        ("+6281234567890", "Indonesia"),
        ("+12025550123", "North America"),
        ("+18095550123", "Rest of Latin America"),  # +1 809 beats +1
        ("18095550123", "Rest of Latin America"),
        ("+18105550123", "North America"),  # +1 810 is not split
        ("+447700900123", "Other"),
        ("+33612345678", None),
        ("+1", "North America"),
        ("", None),
    ],
)
def test_market_of_takes_the_longest_calling_code(phone: str, market: str | None) -> None:
    assert market_of(phone, SAMPLE_MARKETS) == market


def test_tiers_price_each_message_by_its_number_in_the_month() -> None:
    tiers = [Tier(1, 100, Decimal("10")), Tier(101, 200, Decimal("8")), Tier(201, None, Decimal("5"))]
    assert tiered_amount(tiers, 0, 50) == Decimal("500")
    assert tiered_amount(tiers, 0, 100) == Decimal("1000")
    # 90 already: messages 91..100 at 10, 101..200 at 8, 201..250 at 5
    assert tiered_amount(tiers, 90, 160) == Decimal(10 * 10 + 100 * 8 + 50 * 5)
    assert tiered_amount(tiers, 1000, 3) == Decimal("15")
    assert tiered_amount(tiers, 0, 0) == Decimal("0")


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        ("586.325", 2, "586.33"),  # half up, not half even
        ("586.335", 2, "586.34"),
        ("0.005", 2, "0.01"),
        ("0.0049", 2, "0.00"),
        ("1204.5", 0, "1205"),
        ("12.3456", 4, "12.3456"),
    ],
)
def test_amounts_round_half_up_to_the_minor_unit(amount: str, unit: int, expected: str) -> None:
    assert str(round_money(Decimal(amount), unit)) == expected


def test_price_counts_sums_rounded_lines_with_decimal_only() -> None:
    card = pricing.RateCard(
        id=1,
        currency="USD",
        minor_unit=2,
        effective_on=date(2026, 1, 1),
        rates={"A": {"marketing": Decimal("0.0107")}, "B": {"utility": Decimal("0.004")}},
        markets={"1": "A"},
        tiers={},
        source="",
        imported_at=datetime.now(UTC),
        imported_by="t",
        prefix_len=1,
    )
    cost = cost_estimate.price_counts(
        card,
        {("A", "marketing"): 3, ("B", "marketing"): 2, ("unknown", "marketing"): 1},
        kind="estimate",
        category="marketing",
        note=cost_estimate.ASSUMPTIONS,
    )
    a = next(line for line in cost.lines if line.market == "A")
    assert a.amount == Decimal("0.03") and a.price == Decimal("0.0107")  # 0.0321 -> 0.03
    assert cost.total == Decimal("0.03") and cost.unpriced == 3 and cost.messages == 6
    assert all(isinstance(line.amount, Decimal | None) for line in cost.lines)


# ------------------------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------------------------


async def test_sample_card_imports_and_is_listed(db: object) -> None:
    result = await import_sample("2026-10-01")
    card = result.card
    assert (card.currency, card.minor_unit, card.effective_on) == ("IDR", 2, date(2026, 10, 1))
    assert card.rates["Indonesia"]["marketing"] == Decimal("586.33")
    assert "authentication_international" not in card.rates["North America"]  # empty = not offered
    assert card.markets["1809"] == "Rest of Latin America" and card.prefix_len == 4
    assert [t.volume_from for t in card.tiers[("Indonesia", "utility")]] == [1, 100001, 500001]
    assert [c.id for c in await pricing.list_cards()] == [card.id]
    assert await AuditLog.filter(entity="price_card", action="import").count() == 1


async def test_newest_card_effective_on_the_date_is_used(db: object) -> None:
    old = (await import_sample("2026-01-01")).card
    new = (await import_sample("2026-10-01")).card
    assert await pricing.card_for(date(2025, 12, 31)) is None
    assert (await pricing.card_for(date(2026, 9, 30)) or old).id == old.id
    assert (await pricing.card_for(date(2026, 10, 1)) or old).id == new.id
    again = (await import_sample("2026-10-01")).card  # re-imported the same day: the last one wins
    assert (await pricing.card_for(date(2027, 1, 1)) or old).id == again.id


async def test_markets_are_reused_from_the_previous_card_when_not_given(db: object) -> None:
    with pytest.raises(ValidationFailed, match="the first card needs one"):
        await rate_card_import.import_card(rates=RATES, currency="IDR", effective="2026-01-01", actor="t")
    first = (await import_sample()).card
    result = await rate_card_import.import_card(
        rates=RATES, currency="IDR", effective="2026-02-01", actor="t"
    )
    assert result.markets_reused_from == first.id and result.card.markets == first.markets


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rates", "markets", "tiers", "message"),
    [
        ("market,marketing\nIndonesia,0,5\n", None, None, r"rates\.csv row 1: 3 cells, the header has 2"),
        ("market,marketing\nIndonesia,1.234,56\n", None, None, "row 1: 3 cells"),
        ("market,marketing\nIndonesia,0,586\n", None, None, "row 1: 3 cells"),
        ("market,marketing\nIndonesia,1;5\n", None, None, r"row 1, column marketing: '1;5' is not a price"),
        (
            "market,marketing\nA,1\nB,-2\n",
            None,
            None,
            r"rates\.csv row 2, column marketing: '-2' is not a price",
        ),
        ("market,marketing\nA,1\nA,2\n", None, None, r"row 2, column market: 'A' appears twice"),
        ("market,marketing,sms\nA,1,2\n", None, None, r"column 'sms' is unknown"),
        ("market,currency,marketing\nA,USD,1\n", None, None, r"row 1, column currency: 'USD'"),
        ("marketing\n1\n", None, None, "no market column"),
        ("market,marketing\n", None, None, "has no rows"),
        (
            "market,marketing\nA,1\n",
            "calling_code,market\n62,A\n6x,A\n",
            None,
            r"markets\.csv row 2, column calling_code",
        ),
        (
            "market,marketing\nA,1\n",
            "calling_code,market\n62,A\n+6 2,A\n",
            None,
            "row 2, column calling_code: '\\+6 2' appears twice",
        ),
        (
            "market,marketing\nA,1\n",
            "calling_code,market\n62,B\n",
            None,
            r"row 1, column market: 'B' has no row",
        ),
        (
            "market,utility\nA,1\n",
            "calling_code,market\n62,A\n",
            "market,category,volume_from,volume_to,rate\nA,marketing,1,,1\n",
            r"tiers\.csv row 1, column category: 'marketing' has no volume tiers",
        ),
        (
            "market,utility\nA,1\n",
            "calling_code,market\n62,A\n",
            "market,category,volume_from,volume_to,rate\nA,utility,1,100,1\nA,utility,102,,0.5\n",
            r"tiers\.csv row 2, column volume_from: 102, but A utility continues at 101",
        ),
        (
            "market,utility\nA,1\n",
            "calling_code,market\n62,A\n",
            "market,category,volume_from,volume_to,rate\nA,utility,1,,1\nA,utility,101,,0.5\n",
            "already has an open last tier",
        ),
        (
            "market,utility\nA,1\n",
            "calling_code,market\n62,A\n",
            "market,category,volume_from,volume_to,rate\nA,utility,1,100,\n",
            r"row 1, column rate: empty",
        ),
    ],
)
async def test_a_bad_row_is_one_line_naming_row_and_column_and_nothing_is_stored(
    db: object, tmp_path: Path, rates: str, markets: str | None, tiers: str | None, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        await rate_card_import.import_card(
            rates=_write(tmp_path, "rates.csv", rates),
            markets=_write(tmp_path, "markets.csv", markets or "calling_code,market\n62,A\n"),
            tiers=_write(tmp_path, "tiers.csv", tiers) if tiers else None,
            currency="IDR",
            effective="2026-01-01",
            actor="t",
        )
    assert "\n" not in str(info.value)
    assert await PriceCard.all().count() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"currency": "rupiah"}, "not an ISO 4217 code"),
        ({"currency": "XYZ"}, "give --minor-unit"),
        ({"effective": "1 Oct 2026"}, "is not a date"),
        ({"rates": DATA / "missing.csv"}, "does not exist"),
    ],
)
async def test_bad_arguments_are_refused(db: object, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "rates": RATES,
        "markets": MARKETS,
        "currency": "IDR",
        "effective": "2026-01-01",
        "actor": "t",
        **kwargs,
    }
    with pytest.raises(ValidationFailed, match=message):
        await rate_card_import.import_card(**args)  # type: ignore[arg-type]  # the test varies one argument at a time
    assert await PriceCard.all().count() == 0


async def test_minor_unit_can_be_given_for_another_currency(db: object, tmp_path: Path) -> None:
    rates = _write(tmp_path, "r.csv", "market,marketing\nA,1.5\n")
    markets = _write(tmp_path, "m.csv", "calling_code,market\n62,A\n")
    card = (
        await rate_card_import.import_card(
            rates=rates, markets=markets, currency="CHF", minor_unit=2, effective="2026-01-01", actor="t"
        )
    ).card
    assert card.minor_unit == 2 and card.currency == "CHF"


# ------------------------------------------------------------------------------------------------------------
# estimate of a stored blast
# ------------------------------------------------------------------------------------------------------------


async def test_estimate_without_a_card_says_so(db: object) -> None:
    blast = await make_blast(await make_template(category="MARKETING"), n=3)
    cost = await cost_estimate.estimate_blast(blast.id)
    assert cost.card_id is None and cost.total is None and cost.note == cost_estimate.NO_CARD
    assert cost.messages == 3
    assert cost_estimate.summary_lines(cost)[0].endswith(
        "no rate card imported (blast-console pricing import)"
    )


async def test_estimate_counts_markets_and_leaves_out_suppressed_failed_and_skipped(db: object) -> None:
    await import_sample("2026-01-01", tiers=False)
    blast = await make_blast(await make_template(category="MARKETING"), n=4)
    await Recipient.bulk_create(
        [
            Recipient(blast_id=blast.id, phone="+18095550100", row=5),
            Recipient(blast_id=blast.id, phone="+12025550100", row=6),
            Recipient(blast_id=blast.id, phone="+33612345678", row=7),
            Recipient(blast_id=blast.id, phone="+6281299999990", row=8, status=R.FAILED),
            Recipient(blast_id=blast.id, phone="+6281299999991", row=9, status=R.SKIPPED),
        ]
    )
    await Suppression.create(phone="+6281200000000", reason="opted out")
    cost = await cost_estimate.estimate_blast(blast.id)
    by_market = {line.market: line for line in cost.lines}
    assert by_market["Indonesia"].messages == 3  # 4 pending, one suppressed
    assert by_market["Indonesia"].amount == Decimal("1758.99")  # 3 x 586.33
    assert by_market["Rest of Latin America"].messages == 1
    assert by_market["North America"].amount == Decimal("401.00")
    assert by_market["unknown"].amount is None and cost.unpriced == 1
    assert cost.total == Decimal("1758.99") + Decimal("1205.75") + Decimal("401.00")
    assert cost.currency == "IDR" and cost.note == cost_estimate.ASSUMPTIONS and cost.messages == 6
    text = "\n".join(cost_estimate.summary_lines(cost))
    assert "IDR 3,365.74" in text and cost_estimate.ASSUMPTIONS in text


async def test_estimate_continues_the_month_to_date_count_in_the_tiers(db: object) -> None:
    await import_sample("2026-01-01")
    template = await make_template(category="UTILITY")
    now = datetime.now(UTC)
    earlier = await make_blast(template, n=0, status=BlastStatus.COMPLETED, name="earlier")
    await Recipient.bulk_create(
        [
            Recipient(
                blast_id=earlier.id,
                phone=f"+62811{i:08d}",
                status=R.DELIVERED,
                sent_at=now,
                billable=True,
                pricing_category="utility",
            )
            for i in range(99_998)
        ]
    )
    blast = await make_blast(template, n=4, send_at=now)
    cost = await cost_estimate.estimate_blast(blast.id)
    (line,) = cost.lines
    # messages 99,999 and 100,000 at 356.65, 100,001 and 100,002 at 338.82
    assert line.tiered and line.price is None
    assert line.amount == Decimal("356.65") * 2 + Decimal("338.82") * 2


async def test_estimate_of_ten_thousand_recipients_is_fast(db: object) -> None:
    await import_sample("2026-01-01")
    blast = await make_blast(await make_template(category="MARKETING"), n=10_000)
    await cost_estimate.estimate_blast(blast.id)  # warm
    started = time.perf_counter()
    cost = await cost_estimate.estimate_blast(blast.id)
    elapsed = time.perf_counter() - started
    assert cost.messages == 10_000 and cost.total == Decimal("5863300.00")
    assert elapsed < 0.2, f"estimate took {elapsed * 1000:.0f} ms"


async def test_estimate_of_numbers_before_import(db: object) -> None:
    await import_sample("2026-01-01", tiers=False)
    cost = await cost_estimate.estimate_numbers(
        category="AUTHENTICATION", numbers={"62812": 2, "18095": 1}, on=date(2026, 3, 1)
    )
    assert cost.total == Decimal("356.65") * 2 + Decimal("165.00")
    none = await cost_estimate.estimate_numbers(category="MARKETING", numbers={"62": 1}, on=date(2025, 1, 1))
    assert (none.card_id, none.total, none.unpriced, none.note) == (None, None, 1, cost_estimate.NO_CARD)


async def test_an_empty_cost_is_zero_in_the_minor_unit(db: object) -> None:
    await import_sample("2026-01-01")
    blast = await make_blast(await make_template(category="MARKETING"), n=0)
    cost = await cost_estimate.estimate_blast(blast.id)
    assert (cost.messages, cost.to_json()["total"], cost.lines) == (0, "0.00", [])
