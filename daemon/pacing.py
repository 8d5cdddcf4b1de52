"""Provides the timing half of a daemon's send engine: the slot feeder and the request pool.

The feeder is the one client of the shared limiter in the process: it takes full-size grants (about
GRANT_HORIZON_S of sending at the rate, shared by every chunk of the process, first come first served) and asks
again only when the slots it holds are nearly used, so the limiter costs one Redis call per grant, not per
message. The pool is a bounded set of workers that take (slot time, job) pairs in order, wait for the slot and
fire the request. A slot missed by more than LATE_S (a stalled event loop, a slow commit) is never fired late on
top of on-time ones: the job goes back to its chunk, which asks for a new slot. That is what keeps arrivals at
Meta within the limit in every 1 s window, whatever stalls the process.

At most BLAST_MAX_IN_FLIGHT jobs are held by the pool (waiting for their slot or in flight), and the feeder
grants no more than the free room, so with a slow API the requests in flight follow rate x latency up to that
bound, and a "rate" of a million gives exactly that many requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from daemon.rate_limit import RateLimiter, sleep_until

#: How fast the Redis-to-local clock offset may rise (100 ppm: more than two clocks drift apart).
CLOCK_DRIFT = 1e-4
#: A slot missed by more than this is given back (its job asks for a new one) instead of firing late.
LATE_S = 0.005


class Job(Protocol):
    """What a chunk hands to the pool for one recipient."""

    async def fire(self) -> None:
        """Send the request now (the slot has come); never raises."""

    def missed(self) -> None:
        """The slot passed by more than LATE_S before a worker could use it: ask for a new one."""


class RequestPool:
    """Workers that fire jobs at their slot times. Workers are added as needed, up to `max_jobs`, and stay: at
    most `max_jobs` requests are in flight. A few more jobs (`prefetch`, a tenth) may wait for a worker, so that
    when the pool is the limit (a "rate" of a million) the next request leaves as soon as one ends instead of
    after a grant and a mark; a job that waits past its slot by more than LATE_S is given back like any other.

    Args:
        max_jobs: most requests in flight (and jobs waiting for their slot): BLAST_MAX_IN_FLIGHT.
    """

    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max(1, max_jobs)
        self.prefetch = max(1, self.max_jobs // 10)
        self._queue: asyncio.Queue[tuple[float, Job]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._idle = 0
        #: jobs submitted and not yet done (fired and answered, or missed)
        self.held = 0
        self.fired = 0
        self.missed = 0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def room(self) -> int:
        """How many more jobs the pool takes now."""
        return self.max_jobs + self.prefetch - self.held

    async def wait_for_room(self, n: int = 1, stop: asyncio.Event | None = None) -> None:
        """Return once the pool takes at least `n` more jobs (or `stop` is set)."""
        while self.room < n and not (stop is not None and stop.is_set()):
            self._room.clear()
            if stop is None:
                await self._room.wait()
            else:
                await _first(self._room, stop)

    def submit(self, at: float, job: Job) -> None:
        """Fire `job` at the monotonic time `at` (slots are submitted in time order)."""
        self.held += 1
        self._queue.put_nowait((at, job))
        if self._idle < self._queue.qsize() and len(self._workers) < self.max_jobs:
            self._workers.append(asyncio.create_task(self._work(), name=f"request-{len(self._workers)}"))

    async def _work(self) -> None:
        queue = self._queue
        monotonic = time.monotonic
        while True:
            self._idle += 1
            try:
                at, job = await queue.get()
            finally:
                self._idle -= 1
            try:
                delay = at - monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    delay = at - monotonic()
                if delay < -LATE_S:
                    self.missed += 1
                    job.missed()
                else:
                    self.fired += 1
                    await job.fire()
            finally:
                self.held -= 1
                self._room.set()

    @property
    def workers(self) -> int:
        return len(self._workers)

    async def aclose(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()


class SlotFeeder:
    """The process's share of a sender's limiter: full grants, handed to chunks first come first served.

    Args:
        limiter: the shared limiter of the sender number.
        room: how many more jobs the request pool takes now (grants never exceed it).
        max_jobs: the most jobs the pool holds.
        wait_for_room: waits until the pool takes n more jobs.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        room: Callable[[], int],
        max_jobs: int,
        wait_for_room: Callable[[int, asyncio.Event | None], Awaitable[None]],
    ) -> None:
        self.limiter = limiter
        self._room = room
        self._wait_for_room = wait_for_room
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._wanted = 0
        self._last_slot = 0.0
        self._offset = 0.0
        self._offset_at = 0.0
        #: slots per full grant: the limiter's horizon at the configured rate
        self.grant_size = max(1, int(limiter.rate * limiter.horizon_s))
        #: room in the pool worth a grant (when the pool, not the rate, is the limit: a "rate" of a million with
        #: 100 in flight): a Redis call and a mark per tenth of the concurrency, not per message
        self.room_batch = max(1, min(self.grant_size // 4, max_jobs // 10))
        self.grants = 0
        self.expired = 0

    def _drop_missed(self, now: float) -> None:
        slots = self._slots
        while slots and slots[0] < now - LATE_S:
            slots.popleft()
            self.expired += 1

    async def take(self, want: int, stop: asyncio.Event | None = None) -> list[float]:
        """Up to `want` slot times (monotonic, in order), at least one unless `stop` is set first (then none).

        Raises:
            redis.exceptions.RedisError: Redis unreachable (the caller stops sending).
        """
        self._wanted += want
        try:
            async with self._lock:
                while True:
                    if stop is not None and stop.is_set():
                        return []
                    now = time.monotonic()
                    self._drop_missed(now)
                    if self._slots:
                        n = min(want, len(self._slots))
                        return [self._slots.popleft() for _ in range(n)]
                    room = self._room()
                    if room < min(self.room_batch, self._wanted):
                        await self._wait_for_room(min(self.room_batch, self._wanted), stop)
                        continue
                    await self._grant(min(self.grant_size, self._wanted, room), stop)
        finally:
            self._wanted -= want

    async def _grant(self, ask: int, stop: asyncio.Event | None) -> None:
        # Ask only for a grant that is worth it: 3/4 of a full one, or all that is wanted when that is less (the
        # last quarter of the horizon is the time left to mark the next recipients SENDING before their slots
        # come; the limiter is asked about 13 times a second at any rate that fills its horizon). Our own
        # newest slot says when that much fits in the limiter's horizon again (other daemons' grants can push it
        # later: then the limiter answers with nothing and says how long to wait), so the limiter is asked about
        # once per grant, not once per freed slot.
        least = min(ask, max(1, self.grant_size * 3 // 4))
        lim = self.limiter
        ready_at = self._last_slot - lim.horizon_s + (least - 1) / lim.rate
        if ready_at > time.monotonic() and not await sleep_until(ready_at, stop):
            return
        grant = await lim.acquire(ask, least=least)
        now = time.monotonic()
        if grant.count == 0:
            await sleep_until(now + grant.wait_s, stop)
            return
        self.grants += 1
        first, step = self._local(grant.server_now_s, now) + grant.first_delay_s, grant.interval_s
        # Never on top of our own previous grant (its slots were mapped with the offset known then).
        first = max(first, self._last_slot + step)
        self._slots.extend(first + i * step for i in range(grant.count))
        self._last_slot = self._slots[-1]

    def _local(self, server_s: float, received: float) -> float:
        """The local (monotonic) time of a Redis time, through the least delayed answer seen.

        An answer read late (a busy loop) would shift that grant's slots later, onto the next grant's: two grants
        mapped with different delays overlap, and their requests leave together above the rate. One offset for
        every grant keeps the limiter's spacing exact here; it may creep up by CLOCK_DRIFT (clock drift between
        Redis and this host) and drops at once to any less delayed answer.
        """
        seen = received - server_s
        if self._offset_at:
            allowed = self._offset + (received - self._offset_at) * CLOCK_DRIFT
            self._offset = min(seen, allowed)
        else:
            self._offset = seen
        self._offset_at = received
        return server_s + self._offset

    def clear(self) -> None:
        """Forget the slots held (a limiter outage or shutdown): they are lost capacity, never sent late."""
        self._slots.clear()


async def _first(a: asyncio.Event, b: asyncio.Event) -> None:
    """Wait until either event is set."""
    if a.is_set() or b.is_set():
        return
    waiters = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
