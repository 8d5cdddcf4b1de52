"""Provides `blast-console search PHONE`: one number across all blasts."""

from __future__ import annotations

import click

from console.cli.common import emit_json, fmt_time, run, state, table
from shared.config import Settings
from shared.services import recipients


@click.command("search")
@click.argument("phone")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
def search_cmd(phone: str, limit: int) -> None:
    """What was sent to PHONE, when, and what happened, newest first."""

    async def work(settings: Settings) -> tuple[list[recipients.PhoneHit], Settings]:
        return await recipients.search_phone(phone, settings=settings, limit=limit), settings

    hits, settings = run(work)
    if state().json:
        emit_json(
            [
                {
                    "blast_id": h.blast_id,
                    "blast": h.blast_name,
                    "template": h.template,
                    "language": h.language,
                    "blast_status": h.blast_status,
                    "status": h.status.value,
                    "wamid": h.wamid,
                    "error_code": h.error_code,
                    "error": h.error_text,
                    "sent_at": h.sent_at,
                    "delivered_at": h.delivered_at,
                    "read_at": h.read_at,
                    "failed_at": h.failed_at,
                }
                for h in hits
            ]
        )
        return
    table(
        ["BLAST", "NAME", "TEMPLATE", "STATUS", "SENT AT", "ERROR"],
        [
            [
                str(h.blast_id),
                h.blast_name[:30],
                f"{h.template}/{h.language}",
                h.status.value,
                fmt_time(h.sent_at, settings),
                f"{h.error_code or ''} {h.error_text or ''}".strip(),
            ]
            for h in hits
        ],
    )
    if not hits:
        click.echo("(no blast included this number)")
