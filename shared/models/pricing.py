"""Provides the PriceCard model: one imported rate card of Meta's (one currency, effective from a date)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class PriceCard(Model):
    """A dated rate card: prices per market and category, volume tiers, and the calling codes of each market.

    Rates are kept as decimal strings (never floats); the newest card effective on a blast's send date prices it.
    """

    id = fields.IntField(primary_key=True)
    #: ISO 4217 code of every rate in the card (IDR, USD …).
    currency = fields.CharField(max_length=3)
    #: Digits after the decimal point of the currency's minor unit (2 for IDR and USD, 0 for JPY): totals round to it.
    minor_unit = fields.IntField()
    #: The first day the card applies to.
    effective_on = fields.DateField(db_index=True)
    #: market -> category -> rate per delivered message (decimal string).
    rates: Any = fields.JSONField(default=dict)
    #: calling-code prefix (digits, e.g. "62", "1809") -> market.
    markets: Any = fields.JSONField(default=dict)
    #: [{"market", "category", "volume_from", "volume_to" (null = no limit), "rate"}]: monthly volume tiers.
    tiers: Any = fields.JSONField(default=list)
    #: The file names it was imported from, as given.
    source = fields.CharField(max_length=500, default="")
    imported_at = fields.DatetimeField()
    imported_by = fields.CharField(max_length=128)

    class Meta:
        table = "price_card"
