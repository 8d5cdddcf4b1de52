"""Provides the fan-out of running blasts into chunk tasks, and the chunk task's body.

A chunk is a taskiq message "send up to ~10 s of blast X" (no recipient ids: the chunk claims pages from the
database under its lease). The Redis sorted set `{prefix}:chunks:{blast}` books the chunks queued or running
(score = when the booking expires); `ensure_chunks` tops a blast up to min(chunks needed, live daemons x
CHUNKS_PER_DAEMON) with one atomic script, so that several daemons dispatching at once never over-fill it, and
idle daemons get chunks of a running blast. Every chunk re-dispatches when it ends, and each daemon's
supervisor tick re-derives everything from the database (a FLUSHALL or a trimmed stream costs at most a booking's TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from typing import Any

from redis.exceptions import RedisError
from taskiq import AsyncBroker

from daemon.chunk_runner import AHEAD_PREFIX, ChunkReport, ChunkRunner, chunk_size, finish_chunk
from daemon.lanes import Lane
from daemon.runtime import Runtime
from shared.outage import is_outage
from shared.services import blast_lifecycle, claims, live, senders
from shared.status import BlastStatus

log = logging.getLogger(__name__)

#: Chunk tasks of one blast (of each number of a pool: at least one) queued per live daemon.
CHUNKS_PER_DAEMON = 3
#: Most chunk tasks a daemon runs at once: CHUNKS_PER_DAEMON, or one per sender number when there are more (see
#: daemon.app), up to this.
CHUNKS_RUNNING = 12
#: A booked chunk that has not started (queued) or not refreshed (running) within this long is presumed lost.
BOOKING_TTL_S = 30.0
#: The chunk task's name (stable: it is in the queued messages).
SEND_CHUNK = "blast.send_chunk"

_BOOK = """
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local have = redis.call('ZCARD', KEYS[1])
local out = {}
for i = 1, want - have do
  local id = ARGV[3 + i]
  if id == nil then break end
  redis.call('ZADD', KEYS[1], now + ttl, id)
  out[#out + 1] = id
end
redis.call('EXPIRE', KEYS[1], 3600)
return out
"""


class Dispatcher:
    """Keeps every PROCESSING blast supplied with chunk tasks."""

    def __init__(self, rt: Runtime, broker: AsyncBroker) -> None:
        self.rt = rt
        self.broker = broker
        self.settings = rt.settings
        self.alive_daemons = 1
        self._book = rt.redis.register_script(_BOOK)
        #: Bookings of ended chunks that could not be dropped (Redis unreachable): dropped at the next tick.
        #: A failover's new master has them from the old one; kept, they would hold their blast's places for
        #: BOOKING_TTL_S and nothing would be queued meanwhile.
        self._stale_bookings: set[tuple[int, str, str | None]] = set()
        #: blast id -> its pool of sender numbers (None: the default sender); fixed once the blast runs
        self._pools: dict[int, list[str] | None] = {}

    def book_key(self, blast_id: int, sender: str | None = None) -> str:
        if sender is None:
            return self.settings.key("chunks", blast_id)
        return self.settings.key("chunks", blast_id, sender)

    async def pool(self, blast_id: int) -> list[str] | None:
        """The blast's sender numbers (None: the default sender), read once per blast."""
        if blast_id not in self._pools:
            if len(self._pools) > 1000:
                self._pools.clear()
            self._pools[blast_id] = await senders.pool_of(blast_id)
        return self._pools[blast_id]

    async def ensure_chunks(self, blast_id: int, *, n_pending: int | None = None, ahead: bool = False) -> int:
        """Queue chunk tasks for a PROCESSING blast up to what it needs. Returns how many were queued.

        `ahead`: queue them although nothing is claimable yet: the blast's next due group comes within
        `GROUP_AHEAD_S`, and chunks queued ahead wait for its time on the clock (see ChunkRunner).
        """
        if n_pending is None:
            active = {b.id: b for b in await blast_lifecycle.processing_blasts()}
            if blast_id not in active:
                return 0
            n_pending = active[blast_id].n_pending
        if n_pending <= 0:
            return 0
        pool = await self.pool(blast_id)
        if pool is None:
            needed = math.ceil(n_pending / chunk_size(self.settings.BLAST_RATE_LIMIT))
            want = min(needed, max(1, self.alive_daemons) * CHUNKS_PER_DAEMON)
            return await self._ensure(blast_id, None, want, ahead)
        # A pool: chunks per number (each paces on its number's limiter), the daemons' chunk places shared out.
        share = max(1, math.ceil(max(1, self.alive_daemons) * CHUNKS_PER_DAEMON / len(pool)))
        share = min(share, max(1, self.alive_daemons * CHUNKS_RUNNING // len(pool)))
        queued = 0
        for sender in pool:
            queued += await self._ensure(blast_id, sender, share, ahead)
        return queued

    async def _ensure(self, blast_id: int, sender: str | None, want: int, ahead: bool = False) -> int:
        # A cheap look first: most calls find the blast fully supplied.
        now = time.time()
        key = self.book_key(blast_id, sender)
        have = await self.rt.redis.zcount(key, now, "+inf")
        if have >= want or (not ahead and not await claims.has_claimable(blast_id)):
            return 0
        ids = [(AHEAD_PREFIX if ahead else "") + secrets.token_hex(4) for _ in range(want)]
        raw_ids = await self._book(keys=[key], args=[now, want, BOOKING_TTL_S, *ids])
        booked = [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in raw_ids]
        kicker = self.broker.find_task(SEND_CHUNK)
        assert kicker is not None
        for n, chunk_id in enumerate(booked):
            try:
                if sender is None:
                    await kicker.kiq(blast_id, chunk_id)
                else:
                    await kicker.kiq(blast_id, chunk_id, sender)
            except Exception:
                # Only what was kicked stays booked: a booking whose message never left would count as a chunk
                # for BOOKING_TTL_S, and the supervisor would queue nothing meanwhile (a blast due just after a
                # Redis restart started 30 s late). Should the failed XADD have landed after all, its chunk
                # books itself again when it starts (one chunk too many at worst: the leases keep it harmless).
                await self._unbook(blast_id, booked[n:], sender)
                raise
        if booked:
            log.debug(
                "blast %s: %s chunk(s) queued%s",
                blast_id,
                len(booked),
                f" for sender {sender}" if sender else "",
            )
        return len(booked)

    async def _unbook(self, blast_id: int, chunk_ids: list[str], sender: str | None = None) -> None:
        """Drop the bookings of chunks that were not queued (best effort: they expire anyway)."""
        try:
            await self.rt.redis.zrem(self.book_key(blast_id, sender), *chunk_ids)
        except (RedisError, OSError) as exc:
            log.debug("blast %s: bookings of unqueued chunks kept until they expire (%s)", blast_id, exc)
        else:
            log.info("blast %s: %s chunk(s) not queued, their bookings dropped", blast_id, len(chunk_ids))

    async def refresh_booking(self, blast_id: int, chunk_id: str, sender: str | None = None) -> None:
        await self.rt.redis.zadd(self.book_key(blast_id, sender), {chunk_id: time.time() + BOOKING_TTL_S})

    async def drop_booking(self, blast_id: int, chunk_id: str, sender: str | None = None) -> None:
        """Drop an ended chunk's booking; if Redis cannot be reached, the next tick drops it.

        Raises:
            redis.exceptions.RedisError, OSError: Redis unreachable (the booking is remembered).
        """
        try:
            await self.rt.redis.zrem(self.book_key(blast_id, sender), chunk_id)
        except (RedisError, OSError):
            self._stale_bookings.add((blast_id, chunk_id, sender))
            raise
        self._stale_bookings.discard((blast_id, chunk_id, sender))

    async def _drop_stale_bookings(self) -> None:
        for blast_id, chunk_id, sender in sorted(
            self._stale_bookings, key=lambda b: (b[0], b[1], b[2] or "")
        ):
            await self.rt.redis.zrem(self.book_key(blast_id, sender), chunk_id)
            self._stale_bookings.discard((blast_id, chunk_id, sender))

    async def tick(self) -> None:
        """Re-derive the work of every PROCESSING blast from the database: expire, finish, top up chunks.

        Raises:
            Exception: the database or Redis is unreachable (the recovery loop logs it once per outage).
        """
        if self._stale_bookings:
            await self._drop_stale_bookings()
        for blast in await blast_lifecycle.processing_blasts():
            await blast_lifecycle.expire_if_due(blast.id)
            if blast.n_pending == 0 and blast.n_sending == 0:
                await self._finish(blast.id)
            elif blast.n_pending > 0:
                await self.ensure_chunks(blast.id, n_pending=blast.n_pending)

    async def _finish(self, blast_id: int) -> None:
        status = await blast_lifecycle.finish_if_done(blast_id, actor=self.rt.actor)
        if status is not None:
            await record_blast_run(self.rt, blast_id, status)


async def record_blast_run(rt: Runtime, blast_id: int, status: BlastStatus) -> None:
    """One job record per finished blast run, for the console."""
    from shared.models import Blast

    blast = await Blast.get_or_none(id=blast_id)
    if blast is None:
        return
    duration = 0
    if blast.started_at is not None and blast.finished_at is not None:
        duration = int((blast.finished_at - blast.started_at).total_seconds() * 1000)
    job = live.JobRecord(
        kind="blast_run",
        key=f"blast:{blast_id}",
        outcome="ok" if status == BlastStatus.COMPLETED else "failed",
        duration_ms=duration,
        at=time.time(),
        daemon=rt.daemon_id,
        error=blast.last_error,
        detail={"status": status.value, **blast.counts(), "total": blast.total},
    )
    with contextlib.suppress(RedisError, OSError):
        await live.record_job(rt.settings, job, client=rt.redis)


async def run_chunk(
    rt: Runtime, dispatcher: Dispatcher, blast_id: int, chunk_id: str, sender: str | None = None
) -> ChunkReport | None:
    """The body of the `blast.send_chunk` task: send one chunk, write its results, finish or re-dispatch.

    `sender`: the number of the blast's pool this chunk sends from (None: the default sender).

    Never raises: errors are logged and recorded; the database-derived supervisor picks up anything left.
    """
    if rt.stopping.is_set():
        return None
    lane: Lane | None = None
    try:
        plan = await claims.load_plan(blast_id)
        if sender is not None:
            lane = await rt.lane(sender)
    except Exception as exc:  # database outage: the supervisor queues the chunk again once it is back
        log.warning("blast %s chunk %s: not started (%s: %s)", blast_id, chunk_id, type(exc).__name__, exc)
        with contextlib.suppress(RedisError, OSError):
            await dispatcher.drop_booking(blast_id, chunk_id, sender)
        return None
    if plan is None or plan.status != BlastStatus.PROCESSING:
        with contextlib.suppress(RedisError, OSError):
            await dispatcher.drop_booking(blast_id, chunk_id, sender)
        return None
    rt.halts.clear_if_stale(blast_id)
    if rt.halts.is_halted(blast_id):
        return None
    token = rt.next_token(chunk_id)
    rt.chunks[token] = f"blast {blast_id} chunk {chunk_id}"
    refresher = asyncio.create_task(_keep_booked(dispatcher, blast_id, chunk_id, sender))
    report: ChunkReport | None = None
    try:
        async with rt.halts.watching(blast_id):
            report = await ChunkRunner(rt, plan, chunk_id, token, lane).run()
        status = await finish_chunk(rt, report)
        if status is not None:
            await record_blast_run(rt, blast_id, status)
    except Exception as exc:
        if is_outage(exc):
            log.warning(
                "blast %s chunk %s: not finished, %s: %s", blast_id, chunk_id, type(exc).__name__, exc
            )
        else:
            log.exception("blast %s chunk %s failed", blast_id, chunk_id)
        if report is None:
            report = ChunkReport(blast_id, chunk_id, error=f"{type(exc).__name__}: {exc}")
        else:
            report.error = f"{type(exc).__name__}: {exc}"
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        rt.chunks.pop(token, None)
    with contextlib.suppress(RedisError, OSError):
        await dispatcher.drop_booking(blast_id, chunk_id, sender)
    log.info(
        "blast %s chunk %s%s: %s requests (%s sent, %s failed, %s retry, %s unknown, %s skipped) in %.1f s%s",
        blast_id,
        chunk_id,
        f" (sender {sender})" if sender else "",
        report.requests,
        report.sent,
        report.failed,
        report.retry,
        report.unknown,
        report.skipped,
        report.duration_s,
        f"; stopped: {report.stopped}" if report.stopped else "",
    )
    await _record_chunk(rt, report)
    if report.error is None and report.stopped is None and not rt.stopping.is_set():
        try:
            await dispatcher.ensure_chunks(blast_id)
        except Exception as exc:
            log.warning(
                "blast %s: re-dispatch after chunk failed (%s); the supervisor retries", blast_id, exc
            )
    return report


async def _keep_booked(dispatcher: Dispatcher, blast_id: int, chunk_id: str, sender: str | None) -> None:
    while True:
        with contextlib.suppress(RedisError, OSError):
            await dispatcher.refresh_booking(blast_id, chunk_id, sender)
        await asyncio.sleep(BOOKING_TTL_S / 4)


async def _record_chunk(rt: Runtime, report: ChunkReport) -> None:
    outcome = "failed" if report.error else ("cancelled" if report.stopped else "ok")
    detail: dict[str, Any] = report.detail()
    job = live.JobRecord(
        kind="chunk",
        key=f"blast:{report.blast_id}:chunk:{report.chunk_id}",
        outcome=outcome,
        duration_ms=int(report.duration_s * 1000),
        at=time.time(),
        daemon=rt.daemon_id,
        error=report.error,
        detail=detail,
    )
    with contextlib.suppress(RedisError, OSError):
        await live.record_job(rt.settings, job, client=rt.redis)
