"""Provides the Template model: a local mirror of one (name, language) template at Meta."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from shared.status import TemplateStatus


class Template(Model):
    id = fields.IntField(primary_key=True)
    meta_id = fields.CharField(max_length=64, null=True, unique=True)
    name = fields.CharField(max_length=512)
    language = fields.CharField(max_length=16)
    category = fields.CharField(max_length=32, default="UTILITY")
    #: The category before Meta last changed it (sync or template_category_update webhook), and when.
    previous_category = fields.CharField(max_length=32, null=True)
    category_changed_at = fields.DatetimeField(null=True)
    status = fields.CharEnumField(TemplateStatus, max_length=24, default=TemplateStatus.SUBMITTED)
    parameter_format = fields.CharField(max_length=16, default="POSITIONAL")
    components: Any = fields.JSONField(default=list)
    #: Body parameter names in order ("1", "2", … for positional templates).
    parameter_names: Any = fields.JSONField(default=list)
    parameter_count = fields.IntField(default=0)
    rejection_reason = fields.TextField(null=True)
    quality_score = fields.CharField(max_length=16, null=True)
    last_synced_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "template"
        unique_together = (("name", "language"),)

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"
