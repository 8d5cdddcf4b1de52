"""Provides the Recipient model (one phone number of one blast) and the suppression list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from shared.status import RecipientStatus

if TYPE_CHECKING:
    from shared.models.blast import Blast


class Recipient(Model):
    id = fields.BigIntField(primary_key=True)
    blast: fields.ForeignKeyRelation[Blast] = fields.ForeignKeyField(
        "models.Blast", related_name="recipients", on_delete=fields.CASCADE, db_index=False
    )
    #: E.164 with the leading +.
    phone = fields.CharField(max_length=20)
    #: Template parameters of this recipient, by name or position ("1", "2" …), plus header_N / button_I_N.
    params: Any = fields.JSONField(default=dict)
    #: Row of the CSV it came from (1 = first data row).
    row = fields.IntField(default=0)
    status = fields.CharEnumField(RecipientStatus, max_length=12, default=RecipientStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    wamid = fields.CharField(max_length=128, null=True)
    wa_id = fields.CharField(max_length=32, null=True)
    error_code = fields.IntField(null=True)
    error_text = fields.TextField(null=True)
    lease_owner = fields.CharField(max_length=128, null=True)
    #: The phone number id it is sent from in a blast with senders (set at its first claim and kept on retry).
    sender_id = fields.CharField(max_length=32, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    read_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)
    #: The `pricing` of Meta's status webhooks (category, type, model, billable).
    #: category: marketing, utility, authentication …; type: regular | free_customer_service | free_entry_point.
    pricing_category = fields.CharField(max_length=32, null=True)
    pricing_type = fields.CharField(max_length=32, null=True)
    pricing_model = fields.CharField(max_length=8, null=True)
    billable = fields.BooleanField(null=True)
    #: Local-time blasts: the recipient's zone (IANA name or "+HH:MM") and when it becomes due (UTC); claims
    #: take it only from then on (index recipient_due, on PENDING rows that have one).
    zone = fields.CharField(max_length=64, null=True)
    due_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "recipient"
        unique_together = (("blast", "phone"),)
        indexes = (
            # the next pending page of a blast
            Index(fields=("blast_id", "status", "id"), name="recipient_next_page"),
            Index(fields=("wamid",), name="recipient_wamid"),
            Index(fields=("phone",), name="recipient_phone"),
            # unique numbers messaged in the last 24 h (the messaging-limit check): a covering range scan
            Index(fields=("sent_at", "phone"), name="recipient_sent_at"),
        )


class Suppression(Model):
    """A number that must not be sent to (opted out, or added by an operator)."""

    phone = fields.CharField(max_length=20, primary_key=True)
    reason = fields.CharField(max_length=200, default="")
    source = fields.CharField(max_length=32, default="operator")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "suppression"
