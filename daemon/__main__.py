"""Provides `blast-daemon`: `run` (default) runs the daemon in the foreground, `migrate` the schema."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from shared.config import Settings, get_settings
from shared.errors import BlastError

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
    from daemon.app import serve
    from shared.db import close_db, open_db
    from shared.notify import close_redis_clients
    from shared.whatsapp import build_provider

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def _on_signal(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: stop taking chunks, finish in-flight requests, write results, exit", name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig.name)
    webhook_url = None
    if settings.is_sandbox and settings.BLAST_HTTP_PORT:
        host = "127.0.0.1" if settings.BLAST_HTTP_HOST in ("0.0.0.0", "::", "") else settings.BLAST_HTTP_HOST
        webhook_url = f"http://{host}:{settings.BLAST_HTTP_PORT}/webhook"
    provider = build_provider(settings, webhook_url=webhook_url)
    await open_db(settings, migrate_schema=settings.BLAST_AUTO_MIGRATE)
    try:
        await provider.start()
        try:
            await serve(settings, provider, stop)
        finally:
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
        asyncio.run(_run(settings))
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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
