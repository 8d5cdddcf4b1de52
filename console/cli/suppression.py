"""Provides `blast-console suppression list|add|remove|import`: the numbers that are never sent to."""

from __future__ import annotations

import click

from console.cli.common import emit_json, fmt_time, run, state, table
from shared.actors import current_actor
from shared.config import Settings
from shared.services import suppression


@click.group("suppression")
def suppression_group() -> None:
    """View and change the suppression list."""


@suppression_group.command("list")
@click.option("--search", "text", default=None, help="Part of a number or reason.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
def list_cmd(text: str | None, limit: int, offset: int) -> None:
    """List suppressed numbers, newest first."""

    async def work(settings: Settings) -> tuple[suppression.SuppressionPage, Settings]:
        return await suppression.list_suppressions(text=text, limit=limit, offset=offset), settings

    page, settings = run(work)
    if state().json:
        emit_json(
            {
                "total": page.total,
                "entries": [
                    {"phone": e.phone, "reason": e.reason, "source": e.source, "created_at": e.created_at}
                    for e in page.entries
                ],
            }
        )
        return
    table(
        ["PHONE", "SOURCE", "REASON", "SINCE"],
        [[e.phone, e.source, e.reason, fmt_time(e.created_at, settings)] for e in page.entries],
    )
    click.echo(f"({len(page.entries)} of {page.total})")


@suppression_group.command("add")
@click.argument("phone")
@click.option("--reason", default="", help="Why (shown to operators).")
def add_cmd(phone: str, reason: str) -> None:
    """Never send to PHONE again."""

    async def work(settings: Settings) -> suppression.SuppressionEntry:
        return await suppression.add(
            phone, reason=reason, actor=current_actor(), default_region=settings.BLAST_DEFAULT_REGION
        )

    entry = run(work, mutating=True)
    if state().json:
        emit_json({"phone": entry.phone, "reason": entry.reason, "source": entry.source})
    else:
        click.echo(f"{entry.phone} suppressed")


@suppression_group.command("remove")
@click.argument("phone")
def remove_cmd(phone: str) -> None:
    """Take PHONE off the list."""

    async def work(settings: Settings) -> None:
        await suppression.remove(phone, actor=current_actor(), default_region=settings.BLAST_DEFAULT_REGION)

    run(work, mutating=True)
    if state().json:
        emit_json({"phone": phone, "removed": True})
    else:
        click.echo(f"{phone} removed from the suppression list")


@suppression_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--reason", default="imported", show_default=True)
def import_cmd(path: str, reason: str) -> None:
    """Add every number of a CSV (a phone column, or one number per line)."""

    async def work(settings: Settings) -> suppression.ImportResult:
        return await suppression.import_csv(
            path, actor=current_actor(), reason=reason, default_region=settings.BLAST_DEFAULT_REGION
        )

    result = run(work, mutating=True)
    if state().json:
        emit_json(
            {
                "added": result.added,
                "already": result.already,
                "rejected_total": result.rejected_total,
                "rejected": [{"row": r, "value": v, "reason": why} for r, v, why in result.rejected],
            }
        )
        return
    click.echo(f"{result.added} added, {result.already} already listed, {result.rejected_total} rejected")
    for row, value, why in result.rejected[:20]:
        click.echo(f"  row {row}: {value!r}: {why}")
