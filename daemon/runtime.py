"""Provides the daemon's shared runtime: its identity, the provider, Redis, the limiter, the in-process stop
flags of blasts (halts) and the registry of the chunks it holds. Tasks get it from the broker's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from shared.actors import daemon_actor
from shared.config import Settings
from shared.services import claims
from shared.status import BlastStatus
from shared.whatsapp.base import WhatsAppProvider

if TYPE_CHECKING:
    from daemon.engine import SendEngine
    from daemon.lanes import Lane, Lanes
    from daemon.rate_limit import RateLimiter

log = logging.getLogger(__name__)

#: How often a daemon re-reads the status of a blast it is sending (the backstop of pub/sub for cancel/pause).
STATUS_POLL_S = 0.4
#: A halt older than this is dropped when the database says the blast is PROCESSING again (a lost "resumed").
STALE_HALT_S = 3.0


def new_daemon_id() -> str:
    """host:pid:nonce, so that any daemon can tell a dead one's leases (same host: by its pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Halts:
    """In-process stop flags per blast: set on cancel/pause/stop-all (pub/sub), on a blast-fatal error (at
    once, before any await) and by the status watcher; every request checks its blast's flag right
    before leaving.
    """

    def __init__(self) -> None:
        self._halted: dict[int, tuple[float, str]] = {}
        self._watchers: dict[int, tuple[int, asyncio.Task[None]]] = {}
        self._events: dict[int, asyncio.Event] = {}

    def is_halted(self, blast_id: int) -> bool:
        return blast_id in self._halted

    def reason(self, blast_id: int) -> str | None:
        item = self._halted.get(blast_id)
        return item[1] if item else None

    def event(self, blast_id: int) -> asyncio.Event:
        ev = self._events.get(blast_id)
        if ev is None:
            ev = self._events[blast_id] = asyncio.Event()
            if blast_id in self._halted:
                ev.set()
        return ev

    def halt(self, blast_id: int, reason: str) -> bool:
        """Stop sending this blast in this process. Returns True if it was not halted yet."""
        first = blast_id not in self._halted
        if first:
            self._halted[blast_id] = (time.monotonic(), reason)
            log.info("blast %s: sending stopped in this daemon (%s)", blast_id, reason)
        self.event(blast_id).set()
        return first

    def clear(self, blast_id: int) -> None:
        if self._halted.pop(blast_id, None) is not None:
            log.info("blast %s: may send again in this daemon", blast_id)
        ev = self._events.get(blast_id)
        if ev is not None:
            ev.clear()

    def clear_if_stale(self, blast_id: int) -> None:
        item = self._halted.get(blast_id)
        if item is not None and time.monotonic() - item[0] > STALE_HALT_S:
            self.clear(blast_id)

    @contextlib.asynccontextmanager
    async def watching(self, blast_id: int) -> AsyncIterator[None]:
        """Poll the blast's status while the block runs (shared by this process's chunks of the blast)."""
        count, task = self._watchers.get(blast_id, (0, None)) or (0, None)
        if task is None or task.done():
            task = asyncio.create_task(self._watch(blast_id), name=f"watch-blast-{blast_id}")
            count = 0
        self._watchers[blast_id] = (count + 1, task)
        try:
            yield
        finally:
            count, task = self._watchers[blast_id]
            if count <= 1:
                del self._watchers[blast_id]
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                self._events.pop(blast_id, None) if blast_id not in self._halted else None
            else:
                self._watchers[blast_id] = (count - 1, task)

    async def _watch(self, blast_id: int) -> None:
        while True:
            try:
                status = await claims.blast_status(blast_id)
            except Exception as exc:  # database outage: the chunk notices on its own writes
                log.debug("status watch of blast %s: %s", blast_id, exc)
                status = BlastStatus.PROCESSING if not self.is_halted(blast_id) else None
            if status is not None and status != BlastStatus.PROCESSING:
                self.halt(blast_id, f"blast is {status.value}")
            await asyncio.sleep(STATUS_POLL_S)


@dataclass(slots=True)
class _Streak:
    count: int = 0
    codes: dict[int | None, int] = field(default_factory=dict)
    meanings: dict[int | None, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreakTrip:
    """N recipients in a row failed with maybe-systemic codes: what to tell the operator."""

    count: int
    code: int | None
    meaning: str


class ErrorStreaks:
    """Per blast, the run of consecutive send results that failed with a maybe-systemic code (100, 131008,
    131009, 132005, 132012: recipient-level by the table, but the same error for many recipients in a row
    means the blast's shared data is wrong).

    Results are noted in the order their responses arrive, by every chunk of the blast in this process (each
    daemon counts its own share). A request Meta accepted ends the run; other errors (throttling, an
    undeliverable number …) neither end nor extend it.
    """

    def __init__(self) -> None:
        self._runs: dict[int, _Streak] = {}

    def accepted(self, blast_id: int) -> None:
        self._runs.pop(blast_id, None)

    def failed(self, blast_id: int, code: int | None, meaning: str, *, limit: int) -> StreakTrip | None:
        """Count one maybe-systemic failure; returns the trip when the run reaches `limit` (0: never)."""
        run = self._runs.setdefault(blast_id, _Streak())
        run.count += 1
        run.codes[code] = run.codes.get(code, 0) + 1
        run.meanings[code] = meaning
        if limit <= 0 or run.count < limit:
            return None
        del self._runs[blast_id]
        common = max(run.codes, key=lambda c: run.codes[c])
        return StreakTrip(run.count, common, run.meanings[common])

    def forget(self, blast_id: int) -> None:
        self._runs.pop(blast_id, None)


@dataclass
class Runtime:
    """Everything the daemon's tasks share (one per process)."""

    settings: Settings
    provider: WhatsAppProvider
    redis: aioredis.Redis
    limiter: RateLimiter
    daemon_id: str = field(default_factory=new_daemon_id)
    halts: Halts = field(default_factory=Halts)
    streaks: ErrorStreaks = field(default_factory=ErrorStreaks)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: chunk token -> description ("blast 42 chunk 3f2a"), shown in the heartbeat.
    chunks: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)
    _seq: int = 0
    _engine: SendEngine | None = None
    _lanes: Lanes | None = None

    def send_engine(self) -> SendEngine:
        """The process's send engine (slot feeder, request pool, result writer), made on first use."""
        if self._engine is None:
            from daemon.engine import SendEngine

            self._engine = SendEngine.for_runtime(self)
        return self._engine

    async def close_engine(self) -> None:
        """After the last chunk: write the results left and stop the request workers."""
        if self._engine is not None:
            await self._engine.aclose()
            self._engine = None
        if self._lanes is not None:
            await self._lanes.aclose()
            self._lanes = None

    def expire_lanes(self) -> None:
        """The sender lanes re-read their rates at their next use."""
        if self._lanes is not None:
            self._lanes.expire()

    async def lane(self, phone_number_id: str) -> Lane:
        """The client, limiter and rate of a sender number other than the default (see daemon.lanes)."""
        if self._lanes is None:
            from daemon.lanes import Lanes

            self._lanes = Lanes(self)
        return await self._lanes.get(phone_number_id)

    def next_token(self, chunk_id: str) -> str:
        self._seq += 1
        return f"{self.daemon_id}/{chunk_id}.{self._seq}"

    @property
    def actor(self) -> str:
        return daemon_actor(self.host)
