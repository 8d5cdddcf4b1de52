"""Provides the scheduler loop: sleep until the earliest due SCHEDULED blast (or due group of a running
local-time blast), woken early by pub/sub when a
blast is created, rescheduled or resumed; claim each due blast (one conditional UPDATE: one daemon
wins) and fan it out; accept each due group as its time comes (or pause its blast when the group is found later
than BLAST_MISSED_CUTOFF, after every daemon was down across its time).

Every daemon runs it; the database is the only truth, so a blast due while no daemon ran (or while Redis was
flushed or restarted) fires at the next loop, which runs at least every POLL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from daemon.chunk_runner import GROUP_AHEAD_S
from daemon.dispatch import Dispatcher
from daemon.runtime import Runtime
from shared.clock import utcnow
from shared.events import publish
from shared.outage import OutageLog, describe, is_outage
from shared.services import blast_lifecycle, claims, live

log = logging.getLogger(__name__)

#: The loop re-reads the database at least this often (lost notifications, clock jumps).
POLL_S = 2.0


class Scheduler:
    def __init__(self, rt: Runtime, dispatcher: Dispatcher) -> None:
        self.rt = rt
        self.dispatcher = dispatcher
        self.wake = asyncio.Event()
        #: Local-time blasts: the next due time each had at the last look.
        self._next_due: dict[int, datetime | None] = {}
        #: Local-time blasts: the due time whose chunks were queued ahead of it.
        self._ahead: dict[int, datetime] = {}

    async def fire_due(self) -> int:
        """Start every due SCHEDULED blast. Returns how many this daemon started."""
        started = 0
        for blast_id in await blast_lifecycle.due_blasts(utcnow()):
            outcome = await blast_lifecycle.start_due_blast(
                blast_id, missed_cutoff_s=self.rt.settings.BLAST_MISSED_CUTOFF, actor=self.rt.actor
            )
            if outcome.kind == "lost":
                continue
            if outcome.kind == "started":
                started += 1
                try:
                    await self.dispatcher.ensure_chunks(blast_id, n_pending=outcome.pending)
                except Exception as exc:
                    # Redis, or taskiq's SendTaskError caused by it: the supervisor queues the chunks once it works.
                    if not is_outage(exc):
                        raise
                    log.warning(
                        "blast %s started but its chunks cannot be queued yet (%s)", blast_id, describe(exc)
                    )
            with contextlib.suppress(RedisError, OSError):
                await live.record_lateness(self.rt.settings, outcome.lateness_s, client=self.rt.redis)
            if outcome.kind == "expired":
                from daemon.dispatch import record_blast_run
                from shared.status import BlastStatus

                status = await claims.blast_status(blast_id)
                if status in (BlastStatus.COMPLETED, BlastStatus.FAILED):
                    await record_blast_run(self.rt, blast_id, status)
        return started

    async def fire_due_groups(self) -> datetime | None:
        """Supply the running local-time blasts whose next due group's time has come with chunks (queued
        GROUP_AHEAD_S before it, to wait for it on the clock; and at its time, if they are not enough).

        Returns:
            When the loop must look again: GROUP_AHEAD_S before the next due time of any of them, or that time.
        """
        now = utcnow()
        soonest: datetime | None = None
        seen: dict[int, datetime | None] = {}
        for blast_id, upcoming in await claims.next_due_times(now):
            if self._next_due.get(blast_id, now) != upcoming:  # a group became due (or first seen)
                try:
                    # Accepted on time, or later than BLAST_MISSED_CUTOFF (every daemon was down): paused.
                    check = await blast_lifecycle.check_due_groups(
                        blast_id, missed_cutoff_s=self.rt.settings.BLAST_MISSED_CUTOFF, actor=self.rt.actor
                    )
                    if check.paused:
                        with contextlib.suppress(RedisError, OSError):
                            await publish(self.rt.settings, "paused", blast_id=blast_id)
                    if not check.sendable:
                        continue
                    await self.dispatcher.ensure_chunks(blast_id)
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    log.warning(
                        "blast %s: chunks of a due group cannot be queued yet (%s)", blast_id, describe(exc)
                    )
                    continue
            seen[blast_id] = upcoming
            if upcoming is None:
                continue
            if self._ahead.get(blast_id) != upcoming and (upcoming - now).total_seconds() <= GROUP_AHEAD_S:
                await self._queue_ahead(blast_id, upcoming)
            # Wake to queue the chunks ahead; then at the group's own time, to accept it and top the chunks up.
            ahead = self._ahead.get(blast_id) == upcoming
            soonest = _earliest(soonest, upcoming if ahead else upcoming - timedelta(seconds=GROUP_AHEAD_S))
        self._next_due = seen
        self._ahead = {b: t for b, t in self._ahead.items() if b in seen}
        return soonest

    async def _queue_ahead(self, blast_id: int, upcoming: datetime) -> None:
        """Queue a running blast's chunks just before its next due group, to wait for its time on the clock."""
        try:
            await self.dispatcher.ensure_chunks(blast_id, ahead=True)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "blast %s: chunks of the next due group not queued ahead (%s)", blast_id, describe(exc)
            )
        self._ahead[blast_id] = upcoming

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop` is set; database errors are logged and retried."""
        log.info("scheduler running")
        outage = OutageLog(log, "scheduler")
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.fire_due()
                nxt = _earliest(await blast_lifecycle.next_send_at(), await self.fire_due_groups())
                outage.ok()
            except Exception as exc:
                await _wait_any(stop, self.wake, outage.failed(exc))
                continue
            await _wait_any(stop, self.wake, _seconds_until(nxt))
        log.info("scheduler stopped")


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _seconds_until(when: datetime | None) -> float:
    if when is None:
        return POLL_S
    return max(0.0, min(POLL_S, (when - utcnow()).total_seconds()))


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    if stop.is_set() or wake.is_set():
        return
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
