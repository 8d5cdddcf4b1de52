"""Provides recovery: the startup sweep and the periodic one (every daemon runs both; conditional updates make
that safe).

- SENDING recipients of a dead daemon (same host: its pid is gone; elsewhere: no heartbeat for
  HEARTBEAT_TTL_S) or with an expired lease become UNKNOWN: their request may have left.
- PENDING recipients leased by a dead daemon are freed at once (otherwise their short lease runs out).
- PROCESSING blasts get their chunks re-queued from the database (the dispatcher's tick), finish, or expire.
- Due SCHEDULED blasts fire (the scheduler's loop does that).
Every sweep that touched something is logged row by row and recorded as a `recovery` job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from daemon.dispatch import Dispatcher
from daemon.runtime import Runtime
from shared.outage import OutageLog
from shared.services import blast_lifecycle, lease_recovery, live

log = logging.getLogger(__name__)

#: Seconds between recovery sweeps (lease recovery) and supervisor ticks (chunk top-up, finishing).
SWEEP_S = 5.0
TICK_S = 1.0
#: The supervisor's retry period while the database or Redis is unreachable.
OUTAGE_RETRY_S = 0.5


class Liveness:
    """Which daemons are alive, from heartbeats (and pids on this host)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.alive: set[str] = {rt.daemon_id}
        self.redis_ok = False
        self._missing_since: dict[str, float] = {}

    async def refresh(self) -> None:
        try:
            infos = await live.daemons(self.rt.settings, client=self.rt.redis)
        except (RedisError, OSError):
            self.redis_ok = False
            return
        self.redis_ok = True
        self.alive = {d.id for d in infos if d.alive} | {self.rt.daemon_id}

    def is_dead(self, daemon_id: str) -> bool:
        if daemon_id == self.rt.daemon_id:
            return False
        if lease_recovery.pid_is_dead(daemon_id, self.rt.host):
            return True
        if not self.redis_ok or daemon_id in self.alive:
            self._missing_since.pop(daemon_id, None)
            return False
        # Seen missing twice, a heartbeat period apart: a FLUSHALL alone does not kill anybody.
        first = self._missing_since.setdefault(daemon_id, time.monotonic())
        return time.monotonic() - first > live.HEARTBEAT_TTL_S


async def sweep(rt: Runtime, dispatcher: Dispatcher, liveness: Liveness, *, startup: bool = False) -> None:
    """One recovery sweep; records a job when it changed something (always at startup)."""
    started = time.monotonic()
    await liveness.refresh()
    counts = await lease_recovery.recover_leases(is_dead=liveness.is_dead)
    released = counts.released
    if startup or counts.dead_owners:
        for blast in await blast_lifecycle.processing_blasts():
            released += await lease_recovery.release_dead_pending(blast.id, is_dead=liveness.is_dead)
    if counts.touched or released or startup:
        log.info(
            "recovery sweep%s: %s SENDING -> UNKNOWN, %s leases released, dead daemons: %s",
            " (startup)" if startup else "",
            counts.unknown,
            released,
            ", ".join(counts.dead_owners) or "none",
        )
        job = live.JobRecord(
            kind="recovery",
            key="recovery:startup" if startup else "recovery",
            outcome="ok",
            duration_ms=int((time.monotonic() - started) * 1000),
            at=time.time(),
            daemon=rt.daemon_id,
            detail={"unknown": counts.unknown, "released": released, "dead": list(counts.dead_owners)},
        )
        with contextlib.suppress(RedisError, OSError):
            await live.record_job(rt.settings, job, client=rt.redis)
    await dispatcher.tick()


async def run_recovery(rt: Runtime, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    """Sweep every SWEEP_S and tick the dispatcher every TICK_S until `stop`; errors are logged, not fatal."""
    liveness = Liveness(rt)
    # Retried every half second at most during an outage: the tick queues the chunks, and sending should resume
    # well within 2 s of Redis (or the database) answering again.
    outage = OutageLog(log, "recovery", base_s=OUTAGE_RETRY_S, cap_s=OUTAGE_RETRY_S)
    last_sweep = 0.0
    first = True
    while not stop.is_set():
        wait_s = TICK_S
        try:
            if time.monotonic() - last_sweep >= SWEEP_S:
                await sweep(rt, dispatcher, liveness, startup=first)
                first = False
                last_sweep = time.monotonic()
            else:
                await dispatcher.tick()
            outage.ok()
        except Exception as exc:
            wait_s = outage.failed(exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait_s)
