"""Provides the pausing of blasts whose template Meta made unusable (not APPROVED), with the operator's reason.

Both the full sync and the template status webhook (shared.services.template_sync) call it: a blast left
SCHEDULED or PROCESSING with such a template would fail every recipient with 132015/132016.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.config import Settings
from shared.errors import InvalidTransition, NotFound
from shared.models import Blast
from shared.services.templates import label
from shared.status import BLAST_ACTIVE, TemplateStatus

log = logging.getLogger(__name__)
T = TemplateStatus

#: Statuses after which Meta will not bring the template back: the blast needs another template.
FINAL_STATUSES = frozenset({T.DISABLED, T.DELETED, T.PENDING_DELETION, T.ARCHIVED})


@dataclass(frozen=True, slots=True)
class PausedBlast:
    blast_id: int
    template: str
    language: str
    reason: str


def _status_tail(status: TemplateStatus) -> str:
    if status in FINAL_STATUSES:
        return "it will not come back: cancel the blast, or create it again with another template"
    return "resume the blast once the template is APPROVED again"


def pause_reason(name: str, language: str, status: TemplateStatus, why: str | None) -> str:
    """The operator-facing reason of a blast paused because of its template."""
    detail = f": {why}" if why else ""
    return f"template {label(name, language)} became {status.value} at Meta{detail}; {_status_tail(status)}"


async def pause_blasts_of_unusable_templates(
    *, settings: Settings, actor: str, template_ids: Sequence[int] | None = None
) -> list[PausedBlast]:
    """Pause every SCHEDULED or PROCESSING blast whose template is not APPROVED.

    Args:
        settings: the deployment.
        actor: who pauses (recorded in the audit log).
        template_ids: only blasts of these templates (default: all).

    Returns:
        The blasts this call paused (one another process paused first are left out).
    """
    # Deferred: blasts imports the CSV parsers, which the sync itself does not need.
    from shared.services.blast_actions import pause_blast

    query = Blast.filter(status__in=list(BLAST_ACTIVE)).exclude(template__status=T.APPROVED)
    if template_ids is not None:
        if not template_ids:
            return []
        query = query.filter(template_id__in=list(template_ids))
    rows = await query.select_related("template").order_by("id")
    paused: list[PausedBlast] = []
    for blast in rows:
        tmpl = blast.template
        status = TemplateStatus(tmpl.status)
        why = tmpl.rejection_reason
        if why is None and status == T.PAUSED and tmpl.quality_score:
            why = f"quality rating {tmpl.quality_score}"
        reason = pause_reason(tmpl.name, tmpl.language, status, why)
        try:
            await pause_blast(blast.id, settings=settings, reason=reason, actor=actor)
        except (InvalidTransition, NotFound) as exc:
            log.info(
                "blast %s not paused for template %s: %s", blast.id, label(tmpl.name, tmpl.language), exc
            )
            continue
        log.warning("blast %s paused: %s", blast.id, reason)
        paused.append(PausedBlast(blast.id, tmpl.name, tmpl.language, reason))
    return paused
