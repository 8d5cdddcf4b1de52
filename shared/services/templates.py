"""Provides template queries for both programs, and how a template is named and its parameters counted.

Elsewhere: the sync with Meta and its webhooks (shared.services.template_sync), drafts and their submission
(shared.services.template_drafts), pausing blasts whose template became unusable (shared.services.template_pausing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import ValidationFailed
from shared.models import Template
from shared.parsing.template_params import param_keys
from shared.status import TemplateStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TemplateSummary:
    id: int
    name: str
    language: str
    category: str
    status: TemplateStatus
    parameter_format: str
    parameters: tuple[str, ...]
    rejection_reason: str | None
    last_synced_at: datetime | None
    #: The category before Meta changed it, when it did.
    previous_category: str | None = None

    @property
    def category_shown(self) -> str:
        """The category, with the change Meta made: "MARKETING (was UTILITY)"."""
        return f"{self.category} (was {self.previous_category})" if self.previous_category else self.category


def summarize(t: Template) -> TemplateSummary:
    keys = param_keys(t.components or [], t.parameter_format)
    return TemplateSummary(
        id=t.id,
        name=t.name,
        language=t.language,
        category=t.category,
        status=TemplateStatus(t.status),
        parameter_format=t.parameter_format,
        parameters=tuple(keys.all_keys),
        rejection_reason=t.rejection_reason,
        last_synced_at=t.last_synced_at,
        previous_category=t.previous_category,
    )


async def list_templates(
    *, statuses: Sequence[TemplateStatus] | None = None, text: str | None = None
) -> list[TemplateSummary]:
    """Templates by name and language, optionally filtered by status or by text in the name."""
    query = Template.all()
    if statuses:
        query = query.filter(status__in=list(statuses))
    if text:
        query = query.filter(name__icontains=text)
    return [summarize(t) for t in await query.order_by("name", "language")]


async def last_sync() -> datetime | None:
    """When a template was last written by a sync (None: never synced)."""
    latest = await Template.exclude(last_synced_at=None).order_by("-last_synced_at").first()
    return latest.last_synced_at if latest is not None else None


def label(name: str, language: str) -> str:
    """How logs and reasons name a template: `name (language)`."""
    return f"{name} ({language})"


def stored_parameters(
    components: Sequence[Mapping[str, Any]], parameter_format: str
) -> tuple[list[str], int]:
    """The body's parameter names in order and their count (what the model stores)."""
    try:
        keys = param_keys(list(components), parameter_format)
    except ValidationFailed as exc:
        # Meta's definition is what it is: keep the template, say why its parameters are unknown.
        log.warning("template parameters not understood (%s)", exc)
        return [], 0
    names = [str(k) for k in keys.body]
    return names, len(names)
