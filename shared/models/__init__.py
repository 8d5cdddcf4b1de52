"""Provides the tortoise models (the database is the source of truth)."""

from shared.models.audit import AuditLog
from shared.models.blast import Blast
from shared.models.recipient import Recipient, Suppression
from shared.models.template import Template

__all__ = ["AuditLog", "Blast", "Recipient", "Suppression", "Template"]
