"""Provides the tortoise models (the database is the source of truth)."""

from shared.models.api import ApiIdempotency, ApiToken
from shared.models.audit import AuditLog
from shared.models.blast import Blast
from shared.models.pricing import PriceCard
from shared.models.recipient import Recipient, Suppression
from shared.models.sender import Sender
from shared.models.template import Template
from shared.models.webhook import OrphanStatus, WebhookEvent

__all__ = [
    "ApiIdempotency",
    "ApiToken",
    "AuditLog",
    "Blast",
    "OrphanStatus",
    "PriceCard",
    "Recipient",
    "Sender",
    "Suppression",
    "Template",
    "WebhookEvent",
]
