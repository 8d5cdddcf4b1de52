"""Provides run_tui(): open the database, optionally start the daemon in this process, run the console.

The database is opened before `app.run_async()` so the ORM context belongs to the app's loop (see
ARCHITECTURE §10). Logs go to a file, never to the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from console.cli.common import fail, load
from shared.config import Settings
from shared.db import database
from shared.errors import BlastError
from shared.events import close_redis_clients

log = logging.getLogger(__name__)


def default_log_path(name: str) -> Path:
    """Where the console (and an in-process daemon) write logs: $BLAST_LOG_DIR or ~/.local/state/blast."""
    base = os.environ.get("BLAST_LOG_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "blast"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path / name


def setup_file_logging(path: Path) -> None:
    """Send every log record of this process to `path` (the terminal belongs to the UI)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(os.environ.get("BLAST_LOG_LEVEL", "INFO").upper())
    # taskiq logs every receiver start and stop at INFO; keep the file readable.
    logging.getLogger("taskiq").setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def in_process_daemon(settings: Settings) -> AsyncIterator[None]:
    """Run the daemon as tasks of this process for the duration of the block (all-in-one mode).

    The database is already open (by the console); the daemon shares it, and stops gracefully on exit.
    """
    from daemon.app import serve  # deferred: only --with-daemon needs the daemon's imports
    from shared.whatsapp import build_provider

    webhook_url = None
    if settings.is_sandbox and settings.BLAST_HTTP_PORT:
        host = "127.0.0.1" if settings.BLAST_HTTP_HOST in ("0.0.0.0", "::", "") else settings.BLAST_HTTP_HOST
        webhook_url = f"http://{host}:{settings.BLAST_HTTP_PORT}/webhook"
    provider = build_provider(settings, webhook_url=webhook_url)
    await provider.start()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, provider, stop), name="in-process daemon")
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        except Exception:
            log.exception("the in-process daemon did not stop cleanly")
        await provider.close()


async def _run(settings: Settings, *, read_only: bool, with_daemon: bool, daemon_log: str | None) -> None:
    from console.app import build_app

    async with database(settings):
        try:
            app = build_app(settings, read_only=read_only, daemon_log=daemon_log)
            if with_daemon:
                async with in_process_daemon(settings):
                    await app.run_async()
            else:
                await app.run_async()
        finally:
            await close_redis_clients()


def run_tui(read_only: bool, with_daemon: bool = False) -> None:
    """Open the console UI (blocking until the operator quits).

    Args:
        read_only: hide and refuse every mutating action.
        with_daemon: also run the daemon in this process (all-in-one/demo mode; not for production).
    """
    settings = load()
    log_path = default_log_path("daemon.log" if with_daemon else "console.log")
    setup_file_logging(log_path)
    try:
        asyncio.run(
            _run(
                settings,
                read_only=read_only,
                with_daemon=with_daemon,
                daemon_log=str(log_path) if with_daemon else None,
            )
        )
    except BlastError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
