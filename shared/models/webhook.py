"""Provides the durable inbox of webhook POSTs and the statuses that matched no recipient yet."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class WebhookEvent(Model):
    """One signed webhook POST, stored raw before it is acknowledged and applied later in batches."""

    id = fields.BigIntField(primary_key=True)
    received_at = fields.DatetimeField()
    #: The body exactly as received (Meta escapes non-ASCII, so it is text).
    body = fields.TextField()
    #: Set once applied, or once given up on after too many attempts (then `error` says why).
    processed_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    error = fields.TextField(null=True)

    class Meta:
        table = "webhook_event"
        indexes = (Index(fields=("processed_at", "id"), name="webhook_event_todo"),)


class OrphanStatus(Model):
    """A message status whose wamid (and callback data) matched no recipient when it was applied.

    Retried with a growing delay until `expires_at`, in case the send result is written later.
    """

    id = fields.BigIntField(primary_key=True)
    wamid = fields.CharField(max_length=128)
    status = fields.CharField(max_length=16)
    at = fields.DatetimeField()
    #: Recipient id from biz_opaque_callback_data, when the message carried it.
    recipient_id = fields.BigIntField(null=True)
    phone = fields.CharField(max_length=20, null=True)
    error_code = fields.IntField(null=True)
    error_text = fields.TextField(null=True)
    #: The status's `pricing` (see Recipient), kept until the status is applied.
    pricing_category = fields.CharField(max_length=32, null=True)
    pricing_type = fields.CharField(max_length=32, null=True)
    pricing_model = fields.CharField(max_length=8, null=True)
    billable = fields.BooleanField(null=True)
    received_at = fields.DatetimeField()
    next_try_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    attempts = fields.IntField(default=0)

    class Meta:
        table = "orphan_status"
        indexes = (
            Index(fields=("next_try_at",), name="orphan_status_due"),
            Index(fields=("expires_at",), name="orphan_status_expiry"),
        )
