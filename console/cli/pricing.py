"""Provides `blast-console pricing …`: import a dated rate card from Meta's CSV files, and list the cards."""

from __future__ import annotations

from typing import Any

import click

from console.cli.common import emit_json, run, state, table
from shared.actors import current_actor
from shared.config import Settings
from shared.services import cost_estimate, pricing, rate_card_import
from shared.text import plural


def card_json(card: pricing.RateCard) -> dict[str, Any]:
    return {
        "id": card.id,
        "currency": card.currency,
        "minor_unit": card.minor_unit,
        "effective_on": card.effective_on.isoformat(),
        "imported_at": card.imported_at,
        "imported_by": card.imported_by,
        "source": card.source,
        "rates": {m: {c: str(v) for c, v in by.items()} for m, by in sorted(card.rates.items())},
        "markets": dict(sorted(card.markets.items())),
        "tiers": [
            {
                "market": market,
                "category": category,
                "volume_from": t.volume_from,
                "volume_to": t.volume_to,
                "rate": str(t.rate),
            }
            for (market, category), tiers in sorted(card.tiers.items())
            for t in tiers
        ],
    }


@click.group("pricing")
def pricing_group() -> None:
    """Meta's rate cards: what a blast costs."""


@pricing_group.command("import")
@click.argument("rates", type=click.Path(dir_okay=False))
@click.option("--markets", default=None, type=click.Path(dir_okay=False), help="CSV: calling_code,market.")
@click.option(
    "--tiers",
    default=None,
    type=click.Path(dir_okay=False),
    help="CSV: market,category,volume_from,volume_to,rate (monthly volume tiers).",
)
@click.option("--currency", required=True, help="ISO 4217 code of the card's prices, e.g. IDR.")
@click.option("--effective", required=True, help="First day the card applies, YYYY-MM-DD.")
@click.option(
    "--minor-unit", type=int, default=None, help="Digits of the currency's minor unit, if not known."
)
def import_cmd(
    rates: str, markets: str | None, tiers: str | None, currency: str, effective: str, minor_unit: int | None
) -> None:
    """Store a dated rate card from RATES.csv (market, marketing, utility, authentication …); nothing is stored
    when any row is wrong. Without --markets the calling codes of the newest card are kept."""

    async def work(settings: Settings) -> rate_card_import.ImportResult:
        return await rate_card_import.import_card(
            rates=rates,
            markets=markets,
            tiers=tiers,
            currency=currency,
            effective=effective,
            minor_unit=minor_unit,
            actor=current_actor(),
        )

    result = run(work, mutating=True)
    card = result.card
    if state().json:
        emit_json({**card_json(card), "markets_reused_from": result.markets_reused_from})
        return
    reused = f" (calling codes of card {result.markets_reused_from})" if result.markets_reused_from else ""
    click.echo(
        f"rate card {card.id} imported: {card.currency}, effective {card.effective_on.isoformat()}, "
        f"{plural(len(card.rates), 'market', grouped=False)}, {plural(len(card.markets), 'calling code', grouped=False)}"
        f"{reused}, "
        f"{plural(sum(len(t) for t in card.tiers.values()), 'volume tier', grouped=False)}"
    )


@pricing_group.command("show")
def show_cmd() -> None:
    """List the imported rate cards, newest effective date first (--json: with every rate)."""

    async def work(settings: Settings) -> list[pricing.RateCard]:
        return await pricing.list_cards()

    cards = run(work)
    if state().json:
        emit_json([card_json(c) for c in cards])
        return
    if not cards:
        click.echo(
            f"{cost_estimate.NO_CARD} (blast-console pricing import RATES.csv --markets MARKETS.csv …)"
        )
        return
    table(
        ["ID", "CURRENCY", "EFFECTIVE", "MARKETS", "CODES", "TIERS", "IMPORTED BY", "FROM"],
        [
            [
                str(c.id),
                c.currency,
                c.effective_on.isoformat(),
                str(len(c.rates)),
                str(len(c.markets)),
                str(sum(len(t) for t in c.tiers.values())),
                c.imported_by,
                c.source,
            ]
            for c in cards
        ],
    )
