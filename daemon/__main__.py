"""Provides `blast-daemon`: `run` (default) runs the daemon in the foreground, `migrate` the schema."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING

import click

from shared import eventloop
from shared.config import Settings, get_settings
from shared.errors import BlastError
from shared.text import plural
from shared.whatsapp.base import WhatsAppProvider

if TYPE_CHECKING:
    from shared.services.purge import PurgeResult

log = logging.getLogger("daemon")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # taskiq logs every receiver start and stop at INFO; keep ours readable.
    logging.getLogger("taskiq").setLevel(logging.WARNING)


async def _run(settings: Settings) -> None:
    from daemon import systemd
    from daemon.app import serve
    from daemon.http.health import Readiness
    from daemon.reload import reload_credentials
    from shared.db import close_db, open_db
    from shared.events import close_redis_clients
    from shared.whatsapp import build_provider

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    provider_box: list[WhatsAppProvider] = []

    def _on_reload() -> None:
        # SIGHUP (systemctl reload): new Meta credentials from the env files; in-flight work is not touched.
        log.info("SIGHUP received: re-reading the env files for new Meta credentials")
        systemd.reloading()
        if provider_box:
            reload_credentials(settings, provider_box[0])
        systemd.ready("ready (credentials reloaded)")

    def _on_signal(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: stop taking chunks, finish in-flight requests, write results, exit", name)
            systemd.stopping()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, _on_reload)
    webhook_url = None
    if settings.is_sandbox and settings.BLAST_HTTP_PORT:
        host = "127.0.0.1" if settings.BLAST_HTTP_HOST in ("0.0.0.0", "::", "") else settings.BLAST_HTTP_HOST
        webhook_url = f"http://{host}:{settings.BLAST_HTTP_PORT}/webhook"
    provider = build_provider(settings, webhook_url=webhook_url)
    provider_box.append(provider)
    systemd.status("starting: opening the database")
    await open_db(settings, migrate_schema=settings.BLAST_AUTO_MIGRATE)
    # Everything loaded so far (modules, ORM and settings objects) lives as long as the process: the collector
    # need not walk it again. Its full collections stay short, and a short one does not stall sending.
    gc.freeze()
    try:
        await provider.start()
        # READY=1 once GET /healthz answers 200 (or, without the HTTP server, once every milestone is reached).
        readiness = Readiness()
        probe = (
            systemd.HealthzProbe(settings.BLAST_HTTP_HOST, settings.BLAST_HTTP_PORT)
            if settings.BLAST_HTTP_PORT
            else systemd.ReadinessProbe(readiness)
        )
        notifier = asyncio.create_task(
            systemd.supervise(stop, probe, status_text=f"ready: {provider.describe()}"), name="systemd"
        )
        try:
            await serve(settings, provider, stop, readiness=readiness)
        finally:
            stop.set()  # serve() may also end by an error: the systemd task ends with it
            await notifier
            await provider.close()
    finally:
        await close_db()
        await close_redis_clients()


async def _migrate(settings: Settings) -> list[str]:
    from shared.db import close_db, migrate, open_db

    await open_db(settings, migrate_schema=False)
    try:
        return await migrate(settings.DATABASE_URL)
    finally:
        await close_db()


@click.group(invoke_without_command=True)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """The blast daemon: scheduled WhatsApp template sends, webhooks and template sync."""
    _setup_logging(log_level)
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@cli.command()
def run() -> None:
    """Run the daemon in the foreground (systemd runs this); SIGTERM stops it gracefully."""
    try:
        settings = get_settings()
        eventloop.run(_run(settings))  # uvloop when installed
    except BlastError as exc:
        click.echo(f"blast-daemon: {exc}", err=True)
        sys.exit(2)


@cli.command()
def migrate() -> None:
    """Bring the database schema to this program's version."""
    try:
        applied = asyncio.run(_migrate(get_settings()))
    except BlastError as exc:
        click.echo(f"blast-daemon: {exc}", err=True)
        sys.exit(2)
    click.echo("migrated: " + ", ".join(applied) if applied else "the schema is up to date")


@cli.command()
def check() -> None:
    """Validate the configuration and reach the database, Redis and Meta; one line per finding.

    Exits 1 when a check failed, 2 when the settings themselves do not validate.
    """
    from daemon.check import run as run_checks

    sys.exit(run_checks())


async def _purge(settings: Settings, older_than_days: float, dry_run: bool) -> PurgeResult:
    from shared.actors import current_actor
    from shared.db import close_db, open_db
    from shared.services.purge import purge_personal_data

    await open_db(settings, migrate_schema=False)
    try:
        return await purge_personal_data(
            older_than_days=older_than_days, actor=current_actor(), dry_run=dry_run
        )
    finally:
        await close_db()


@cli.command()
@click.option(
    "--older-than",
    "older_than_days",
    type=click.FloatRange(min=1),
    required=True,
    metavar="DAYS",
    help="Purge recipients of blasts that finished more than DAYS days ago.",
)
@click.option("--yes", is_flag=True, help="Really purge (without it, only count what would be purged).")
def purge(older_than_days: float, yes: bool) -> None:
    """Remove recipients' phone numbers, parameters and message ids from finished blasts older than DAYS.

    Blast counters and recipient statuses stay (reports keep their totals); blasts that are not finished are
    never touched; each purged blast gets an audit entry. Without --yes nothing changes.
    """
    try:
        result = asyncio.run(_purge(get_settings(), older_than_days, dry_run=not yes))
    except BlastError as exc:
        click.echo(f"blast-daemon: {exc}", err=True)
        sys.exit(2)
    when = result.cutoff.isoformat(timespec="seconds")
    verb = "would purge" if result.dry_run else "purged"
    click.echo(
        f"{verb} {plural(result.recipients, 'recipient', grouped=False)} of "
        f"{plural(len(result.blast_ids), 'blast', grouped=False)} finished before {when}; "
        f"{plural(result.webhook_events, 'processed webhook event', grouped=False)}"
    )
    if result.dry_run and (result.recipients or result.webhook_events):
        click.echo("nothing changed: run again with --yes to purge", err=True)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
