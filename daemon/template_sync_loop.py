"""Provides the daemon's periodic template sync: once per TEMPLATE_SYNC_INTERVAL across all daemons.

Every daemon runs this loop; a Redis lock per time slot (shared.services.template_sync.claim_slot) lets one
of them sync per interval. A failed sync changes nothing, is logged and recorded as a failed job, and the next
interval tries again; no exception ends the loop.

`python -m daemon.template_sync_loop` runs the loop alone (database, Redis and the provider from the environment),
for tests and for hosts that only sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time

from shared import metrics
from shared.config import Settings
from shared.services import live
from shared.services.template_sync import SyncReport, slot_of, sync_templates_in_slot
from shared.whatsapp.base import WhatsAppProvider

log = logging.getLogger(__name__)

JOB_KIND = "template_sync"


def default_daemon_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _detail(report: SyncReport) -> dict[str, object]:
    return {
        "created": [f"{c.name} ({c.language}) {c.new.value}" for c in report.created],
        "changed": [
            f"{c.name} ({c.language}) {c.old.value if c.old else '-'} -> {c.new.value}"
            for c in report.changed
        ],
        "unchanged": report.unchanged,
        "paused_blasts": [p.blast_id for p in report.paused_blasts],
    }


async def _record(settings: Settings, job: live.JobRecord) -> None:
    try:
        await live.record_job(settings, job)
    except Exception as exc:  # Redis down: the log line is the record then
        log.warning("template sync: could not record the job (%s)", exc)


async def run_template_sync_once(
    settings: Settings, provider: WhatsAppProvider, *, slot: int | None = None, daemon_id: str | None = None
) -> SyncReport | None:
    """Sync if this slot is ours, and record the job for the console; never raises.

    Returns:
        The report, or None when another daemon syncs this slot (or the sync crashed: logged and recorded).
    """
    daemon_id = daemon_id or default_daemon_id()
    started = time.monotonic()
    try:
        report = await sync_templates_in_slot(settings, provider, slot=slot)
    except Exception as exc:
        log.exception("template sync crashed; retried at the next interval")
        metrics.TEMPLATE_SYNC.labels("failed").inc()
        await _record(
            settings,
            live.JobRecord(
                kind=JOB_KIND,
                key=JOB_KIND,
                outcome="failed",
                duration_ms=int((time.monotonic() - started) * 1000),
                at=time.time(),
                daemon=daemon_id,
                error=f"{type(exc).__name__}: {exc}"[:500],
            ),
        )
        return None
    if report is None:
        return None
    if report.failed:
        log.error("template sync failed: %s; retried at the next interval", report.failed)
    metrics.TEMPLATE_SYNC.labels("failed" if report.failed else "ok").inc()
    await _record(
        settings,
        live.JobRecord(
            kind=JOB_KIND,
            key=JOB_KIND,
            outcome="failed" if report.failed else "ok",
            duration_ms=report.duration_ms,
            at=time.time(),
            daemon=daemon_id,
            error=report.failed,
            detail={} if report.failed else _detail(report),
        ),
    )
    return report


async def run_template_sync_loop(
    settings: Settings, provider: WhatsAppProvider, stop_event: asyncio.Event, *, daemon_id: str | None = None
) -> None:
    """Sync templates at startup and then at every TEMPLATE_SYNC_INTERVAL boundary until `stop_event` is set.

    Args:
        settings: the deployment.
        provider: the started WhatsApp provider (the daemon's, shared with the sender).
        stop_event: set on shutdown; the loop returns promptly.
        daemon_id: the id this daemon records its jobs under (default host:pid).
    """
    interval = settings.TEMPLATE_SYNC_INTERVAL
    daemon_id = daemon_id or default_daemon_id()
    log.info("template sync every %ss", interval)
    while not stop_event.is_set():
        slot = slot_of(time.time(), interval)
        await run_template_sync_once(settings, provider, slot=slot, daemon_id=daemon_id)
        # Wake at the next slot's start (slots are aligned on the clock, so every daemon wakes together and
        # the lock decides); a sync longer than the interval just moves on to the then-current slot.
        wait_s = max(0.0, (slot + 1) * interval - time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=wait_s)
    log.info("template sync stopped")


async def _main() -> None:
    from shared.config import get_settings
    from shared.db import close_db, open_db
    from shared.events import close_redis_clients
    from shared.whatsapp import build_provider

    settings = get_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await open_db(settings)
    provider = build_provider(settings)
    await provider.start()
    try:
        await run_template_sync_loop(settings, provider, stop)
    finally:
        await provider.close()
        await close_db()
        await close_redis_clients()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main())
