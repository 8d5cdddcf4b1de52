"""Provides the Sender model: one WhatsApp phone number a blast can send from."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Sender(Model):
    """A sender number: its ids, the name of the setting holding its token (never the token), its rate cap and
    its standing at Meta (throughput level, quality, the portfolio's messaging limit) as last read."""

    id = fields.IntField(primary_key=True)
    #: Meta's phone number id (what `--sender` names).
    phone_number_id = fields.CharField(max_length=32, unique=True)
    #: The WhatsApp Business Account that owns the number (templates are per WABA).
    waba_id = fields.CharField(max_length=32)
    #: The setting (environment or secrets file) that holds this number's access token.
    token_env = fields.CharField(max_length=64)
    name = fields.CharField(max_length=100, default="")
    display_phone = fields.CharField(max_length=32, default="")
    #: The operator's cap in messages per second (None: Meta's level decides).
    rate_cap = fields.FloatField(null=True)
    #: Meta's `throughput.level` (STANDARD = 80 msg/s, HIGH = 1,000 msg/s), as last read.
    throughput_level = fields.CharField(max_length=16, null=True)
    quality_rating = fields.CharField(max_length=16, null=True)
    #: The portfolio's `whatsapp_business_manager_messaging_limit` (e.g. TIER_10K), as last read.
    messaging_limit_tier = fields.CharField(max_length=32, null=True)
    #: The sender of WHATSAPP_PHONE_NUMBER_ID (blasts without a sender use it).
    is_default = fields.BooleanField(default=False)
    checked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "sender"
