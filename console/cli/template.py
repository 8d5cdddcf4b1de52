"""Provides `blast-console template …`: list (sync and submit come with template management)."""

from __future__ import annotations

import click

from console.cli.common import emit_json, run, state, table
from shared.config import Settings
from shared.services import templates
from shared.status import TemplateStatus


@click.group("template")
def template_group() -> None:
    """Inspect and manage message templates."""


@template_group.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in TemplateStatus],
              case_sensitive=False), help="Only these statuses (repeatable).")
def list_cmd(statuses: tuple[str, ...]) -> None:
    """List templates with their Meta status."""

    async def work(settings: Settings) -> list[templates.TemplateSummary]:
        return await templates.list_templates(statuses=[TemplateStatus(s.upper()) for s in statuses])

    items = run(work)
    if state().json:
        emit_json([{"name": t.name, "language": t.language, "category": t.category, "status": t.status.value}
                   for t in items])
        return
    table(["NAME", "LANGUAGE", "CATEGORY", "STATUS", "PARAMETERS"], [
        [t.name, t.language, t.category, t.status.value, ", ".join(t.parameters) or "-"] for t in items
    ])
