"""Provides `blast-console template …`: list, sync (ask Meta now) and submit (a new template for review)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from console.cli.common import emit_json, fail, run, state, table
from shared.config import Settings
from shared.errors import ConfigError, ValidationFailed
from shared.services import template_drafts, template_sync, templates
from shared.status import TemplateStatus
from shared.text import plural
from shared.whatsapp.base import WhatsAppProvider

T = TypeVar("T")

MISSING_CREDENTIALS = (
    "template {what} needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_BUSINESS_ACCOUNT_ID "
    "(the daemon's secrets file); ask an administrator or run it on the daemon host"
)


@click.group("template")
def template_group() -> None:
    """Inspect and manage message templates."""


@template_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TemplateStatus], case_sensitive=False),
    help="Only these statuses (repeatable).",
)
def list_cmd(statuses: tuple[str, ...]) -> None:
    """List templates with their Meta status."""

    async def work(settings: Settings) -> list[templates.TemplateSummary]:
        return await templates.list_templates(statuses=[TemplateStatus(s.upper()) for s in statuses])

    items = run(work)
    if state().json:
        emit_json(
            [
                {
                    "name": t.name,
                    "language": t.language,
                    "category": t.category,
                    "previous_category": t.previous_category,
                    "status": t.status.value,
                }
                for t in items
            ]
        )
        return
    table(
        ["NAME", "LANGUAGE", "CATEGORY", "STATUS", "PARAMETERS"],
        [
            [t.name, t.language, t.category_shown, t.status.value, ", ".join(t.parameters) or "-"]
            for t in items
        ],
    )


def check_credentials(settings: Settings, what: str) -> None:
    """Refuse early, in the operator's words, when this console cannot talk to Meta.

    Raises:
        ConfigError: the cloud provider is configured but the token or the WABA id is missing.
    """
    if settings.is_sandbox:
        return
    if settings.WHATSAPP_ACCESS_TOKEN is None or not settings.WHATSAPP_BUSINESS_ACCOUNT_ID:
        raise ConfigError(MISSING_CREDENTIALS.format(what=what))


async def with_provider(settings: Settings, what: str, work: Callable[[WhatsAppProvider], Awaitable[T]]) -> T:
    """Run `work` with a started provider (closed afterwards)."""
    check_credentials(settings, what)
    from shared.whatsapp import build_provider  # deferred: only these two commands talk to Meta

    provider = build_provider(settings)
    await provider.start()
    try:
        return await work(provider)
    finally:
        await provider.close()


def _change_json(c: template_sync.TemplateChange) -> dict[str, object]:
    return {
        "name": c.name,
        "language": c.language,
        "old": c.old.value if c.old else None,
        "new": c.new.value,
        "reason": c.reason,
    }


@template_group.command("sync")
def sync_cmd() -> None:
    """Ask Meta for every template now and write what it says (no daemon needed)."""

    async def work(settings: Settings) -> template_sync.SyncReport:
        return await with_provider(
            settings, "sync", lambda provider: template_sync.sync_templates(settings, provider)
        )

    report = run(work, mutating=True)
    if report.failed:
        fail(f"template sync failed, nothing was changed: {report.failed}")
    if state().json:
        emit_json(
            {
                "created": [_change_json(c) for c in report.created],
                "changed": [_change_json(c) for c in report.changed],
                "unchanged": report.unchanged,
                "updated": report.updated,
                "ignored": report.ignored,
                "missing": report.missing,
                "paused_blasts": [
                    {"id": p.blast_id, "template": p.template, "language": p.language, "reason": p.reason}
                    for p in report.paused_blasts
                ],
            }
        )
        return
    for c in report.created:
        click.echo(f"new      {c.name} ({c.language}) {c.new.value}" + (f": {c.reason}" if c.reason else ""))
    for c in report.changed:
        old = c.old.value if c.old else "-"
        click.echo(
            f"changed  {c.name} ({c.language}) {old} -> {c.new.value}" + (f": {c.reason}" if c.reason else "")
        )
    for label in report.updated:
        click.echo(f"updated  {label} (definition changed at Meta)")
    for label in report.ignored:
        click.echo(f"ignored  {label} (status unknown to this release)")
    for label in report.missing:
        click.echo(f"missing  {label} (not listed by Meta; left unchanged)")
    for p in report.paused_blasts:
        click.echo(f"paused   blast {p.blast_id}: {p.reason}")
    click.echo(
        f"{plural(report.listed, 'template', grouped=False)} at Meta: {len(report.created)} new, {len(report.changed)} changed, "
        f"{report.unchanged} unchanged"
        + (
            f"; {plural(len(report.paused_blasts), 'blast', grouped=False)} paused"
            if report.paused_blasts
            else ""
        )
    )


def _parse_examples(values: tuple[str, ...]) -> list[str] | dict[str, str]:
    """Plain values are positional examples in order; name=value pairs are examples of named parameters."""
    named = [v for v in values if "=" in v and v.split("=", 1)[0].strip().isidentifier()]
    if values and len(named) == len(values):
        return {k.strip(): v for k, v in (item.split("=", 1) for item in values)}
    return list(values)


@template_group.command("submit")
@click.option("--name", required=True, help="Lowercase letters, digits and _, e.g. order_update.")
@click.option("--language", required=True, help="Meta's language code, e.g. en_US or id.")
@click.option("--category", required=True, type=click.Choice(["MARKETING", "UTILITY"], case_sensitive=False))
@click.option("--body", required=True, help="The text, with {{1}}, {{2}} … or {{first_name}} … parameters.")
@click.option(
    "--example",
    "examples",
    multiple=True,
    help="One per parameter, in order (positional) or as name=value (named). Repeatable.",
)
@click.option("--header", default=None, help="Optional text header (no parameters).")
@click.option("--footer", default=None, help="Optional footer (no parameters).")
def submit_cmd(
    name: str,
    language: str,
    category: str,
    body: str,
    examples: tuple[str, ...],
    header: str | None,
    footer: str | None,
) -> None:
    """Submit a new template to Meta for review; it is stored as SUBMITTED with Meta's id."""
    parsed = _parse_examples(examples)
    # Validate before asking for credentials or opening anything: typos are the common failure.
    try:
        template_drafts.build_template(
            name=name,
            language=language,
            category=category,
            body=body,
            examples=parsed,
            header=header,
            footer=footer,
        )
    except ValidationFailed as exc:
        fail(str(exc))

    async def work(settings: Settings) -> template_drafts.SubmitResult:
        return await with_provider(
            settings,
            "submit",
            lambda provider: template_drafts.submit_template(
                settings=settings,
                provider=provider,
                name=name,
                language=language,
                category=category,
                body=body,
                examples=parsed,
                header=header,
                footer=footer,
            ),
        )

    result = run(work, mutating=True)
    if state().json:
        emit_json(
            {
                "id": result.id,
                "meta_id": result.meta_id,
                "name": result.name,
                "language": result.language,
                "category": result.category,
                "status": result.status.value,
                "parameter_format": result.parameter_format,
                "parameters": list(result.parameters),
            }
        )
        return
    click.echo(
        f"template {result.name} ({result.language}) submitted: Meta id {result.meta_id}, "
        f"{result.status.value}; "
        "`blast-console template sync` (or the daemon) picks up Meta's review"
    )
