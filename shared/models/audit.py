"""Provides the audit log: who did what to which object, and when."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AuditLog(Model):
    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    #: OS user of the console or "daemon@host".
    actor = fields.CharField(max_length=128)
    action = fields.CharField(max_length=64)
    entity = fields.CharField(max_length=32)
    entity_id = fields.CharField(max_length=64, db_index=True)
    detail: Any = fields.JSONField(default=dict)

    class Meta:
        table = "audit_log"
