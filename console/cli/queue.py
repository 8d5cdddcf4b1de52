"""Provides `blast-console queue stats`: work stream depths, live daemons and the send rate."""

from __future__ import annotations

import time

import click

from console.cli.common import emit_json, run, state, table
from shared.config import Settings
from shared.services.queue_stats import QueueStats, queue_stats


@click.group("queue")
def queue_group() -> None:
    """Inspect the work queue in Redis."""


@queue_group.command("stats")
def stats_cmd() -> None:
    """Stream lengths and pending entries, daemons alive, messages/s."""

    async def work(settings: Settings) -> QueueStats:
        return await queue_stats(settings)

    stats = run(work, needs_db=False)
    if state().json:
        emit_json(stats.to_json())
        return
    table(
        ["STREAM", "LENGTH", "PENDING", "CONSUMERS"],
        [[s.name, str(s.length), str(s.pending), str(s.consumers)] for s in stats.streams],
    )
    click.echo("")
    now = time.time()
    table(
        ["DAEMON", "HOST", "LAST SEEN", "HOLDS"],
        [[d.id, d.host, f"{now - d.last_seen:.0f}s ago", ", ".join(d.chunks) or "-"] for d in stats.daemons],
    )
    if not stats.daemons:
        click.echo("(no daemon alive)")
    click.echo(f"\nrate: {stats.rate.current:.1f}/s of {stats.rate.limit:g}/s")
