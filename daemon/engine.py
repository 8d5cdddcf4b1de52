"""Provides the daemon's send engine: the parts every chunk of the process shares, so that their cost is paid per
grant and per flush, not per message: the slot feeder (one client of the shared limiter), the request pool
(bounded workers that fire at slot times) and the result writer (one set-based write per flush).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from daemon.pacing import RequestPool, SlotFeeder
from daemon.results import ResultWriter

if TYPE_CHECKING:
    from daemon.rate_limit import RateLimiter
    from daemon.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimCursor:
    """Where this daemon's next claim in a blast starts, and when it last started from the blast's start."""

    after_id: int
    scanned_at: float


@dataclass
class SendEngine:
    pool: RequestPool
    feeder: SlotFeeder
    writer: ResultWriter
    #: (blast id, sender number or None for the default) -> where this daemon's chunks claim from
    cursors: dict[tuple[int, str | None], ClaimCursor] = field(default_factory=dict)
    #: limiter key -> the feeder of another sender number (one per number, like `feeder` for the default)
    feeders: dict[str, SlotFeeder] = field(default_factory=dict)

    def feeder_for(self, limiter: RateLimiter) -> SlotFeeder:
        """The process's feeder of a sender number's limiter (a new one when the lane's limiter changed)."""
        feeder = self.feeders.get(limiter.key)
        if feeder is None or feeder.limiter is not limiter:
            pool = self.pool
            feeder = SlotFeeder(
                limiter, room=lambda: pool.room, max_jobs=pool.max_jobs, wait_for_room=pool.wait_for_room
            )
            self.feeders[limiter.key] = feeder
        return feeder

    @classmethod
    def for_runtime(cls, rt: Runtime) -> SendEngine:
        pool = RequestPool(rt.settings.BLAST_MAX_IN_FLIGHT)
        feeder = SlotFeeder(
            rt.limiter, room=lambda: pool.room, max_jobs=pool.max_jobs, wait_for_room=pool.wait_for_room
        )
        return cls(pool=pool, feeder=feeder, writer=ResultWriter(rt))

    async def aclose(self) -> None:
        """After the last chunk: write what is left, stop the workers."""
        log.info(
            "send engine: %s requests fired, %s slots missed and given back, %s slots expired unused, "
            "%s grants, %s result writes, %s workers",
            self.pool.fired,
            self.pool.missed,
            self.feeder.expired,
            self.feeder.grants,
            self.writer.flushes,
            self.pool.workers,
        )
        await self.writer.aclose()
        await self.pool.aclose()
