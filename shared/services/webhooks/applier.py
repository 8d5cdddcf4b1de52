"""Owns the applier loop of a daemon: batches back to back while there is a backlog, idle polling otherwise,
due orphans every second and the purge every minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.config import Settings, get_settings
from shared.outage import OutageLog, is_outage
from shared.services.webhooks.apply import APPLY_BATCH, apply_pending
from shared.services.webhooks.inbox import APPLIER_WAKES, purge_processed
from shared.services.webhooks.orphans import retry_orphans
from shared.services.webhooks.report import ApplyReport, merge
from shared.text import first_line

log = logging.getLogger(__name__)

#: How often the applier looks for due orphans and purges old rows.
ORPHAN_PASS_S = 1.0
PURGE_PASS_S = 60.0

#: An idle applier polls for events stored by other daemons at most this far apart (doubling from `idle_s`).
IDLE_MAX_S = 0.4
#: The most events one batch claims when there is a backlog (claims double from `batch` while they come back full).
APPLY_BATCH_MAX = 2000
#: After a partly filled batch, the next claim waits this long (events gather into one transaction).
GATHER_S = 0.02


async def run_applier(
    stop_event: asyncio.Event,
    *,
    settings: Settings | None = None,
    batch: int = APPLY_BATCH,
    batch_max: int = APPLY_BATCH_MAX,
    gather_s: float = GATHER_S,
    idle_s: float = 0.05,
    on_batch: Callable[[ApplyReport], Awaitable[None] | None] | None = None,
) -> None:
    """Apply stored webhook events until `stop_event` is set: batches back to back while there is a backlog,
    an idle wait otherwise (from `idle_s` doubling to IDLE_MAX_S while nothing comes, cut short when this
    process stores events); due orphans every second, old rows purged every minute. Errors are logged and the
    loop goes on (a database outage just delays the events: they are stored).

    Batches adapt to the load: a claim that comes back full doubles the next one (up to `batch_max`: a backlog
    is applied in big batches, far fewer statements per status); one that comes back partly filled halves it
    (down to `batch`) and the next claim waits `gather_s`, so that a steady stream is applied in batches of
    what arrived meanwhile rather than a few events per transaction. Statuses are applied at most that much
    later; the acknowledgement does not wait for them.
    """
    settings = settings or get_settings()
    wake = asyncio.Event()
    APPLIER_WAKES.add(wake)
    log.info("webhook applier started")
    try:
        limits = _Limits(batch, max(batch, batch_max), gather_s)
        await _apply_loop(stop_event, wake, settings, limits, idle_s, on_batch)
    finally:
        APPLIER_WAKES.discard(wake)
    log.info("webhook applier stopped")


@dataclass(frozen=True, slots=True)
class _Limits:
    batch: int
    batch_max: int
    gather_s: float


async def _apply_loop(
    stop_event: asyncio.Event,
    wake: asyncio.Event,
    settings: Settings,
    limits: _Limits,
    idle_s: float,
    on_batch: Callable[[ApplyReport], Awaitable[None] | None] | None,
) -> None:
    last_orphans = last_purge = 0.0
    outage = OutageLog(log, "webhook applier", base_s=0.4, cap_s=5.0)
    wait = idle_wait = idle_s
    limit = limits.batch
    while not stop_event.is_set():
        wake.clear()
        busy = full = False
        try:
            report = await apply_pending(settings, limit=limit)
            busy = report.events > 0
            full = report.events >= limit
            if full:
                limit = min(limits.batch_max, limit * 2)
            elif busy:
                limit = max(limits.batch, limit // 2)
            now = time.monotonic()
            if now - last_orphans >= ORPHAN_PASS_S:
                last_orphans = now
                orphans = await retry_orphans(settings)
                merge(report, orphans)
            if now - last_purge >= PURGE_PASS_S:
                last_purge = now
                await purge_processed(settings)
            if on_batch is not None and (report.events or report.reconciled):
                result = on_batch(report)
                if inspect.isawaitable(result):
                    await result
            outage.ok()
            idle_wait = idle_s if report.events or report.reconciled else min(IDLE_MAX_S, idle_wait * 2)
            wait = idle_wait
        except Exception as exc:
            # The events are stored: an outage only delays them (logged once); anything else is logged each time.
            if is_outage(exc):
                wait = outage.failed(exc)
            else:
                log.warning("webhook applier: %s (retrying)", first_line(exc))
                wait = min(5.0, max(0.4, wait * 2))
        if full:
            await asyncio.sleep(0)
            continue
        if busy:
            # A partial batch: let the next one gather (only the stop cuts this short, not new events).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), limits.gather_s)
            continue
        waiters = [asyncio.ensure_future(stop_event.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
