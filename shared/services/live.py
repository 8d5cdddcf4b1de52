"""Provides the live, short-lived facts the daemons publish in Redis and the console reads: heartbeats, send rates,
the record of recent jobs, scheduling lateness and the work streams' depths.

Everything here is bounded (TTLs, capped streams and lists); the database stays the source of truth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis

from shared.config import Settings
from shared.events import redis_client

#: A daemon whose heartbeat is older than this is shown as dead (its leases are recovered by others).
HEARTBEAT_TTL_S = 15
#: Jobs kept in the record: at most this many, and none older than JOBS_MAX_AGE_S.
JOBS_MAX = 10_000
JOBS_MAX_AGE_S = 7 * 24 * 3600
RATE_WINDOW_S = 5
LATENESS_KEEP = 1000
#: Redis streams of the taskiq broker, under the prefix (the daemon's broker uses these names).
WORK_STREAMS = ("taskiq",)


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    id: str
    host: str
    pid: int
    started_at: float
    last_seen: float
    provider: str
    version: str
    chunks: list[str] = field(default_factory=list)  # "blast 42 chunk 3"

    @property
    def alive(self) -> bool:
        return time.time() - self.last_seen < HEARTBEAT_TTL_S


@dataclass(frozen=True, slots=True)
class JobRecord:
    kind: str  # blast_run | chunk | template_sync | recovery
    key: str  # e.g. "blast:42", "blast:42:chunk:3", "template_sync"
    outcome: str  # ok | failed | cancelled
    duration_ms: int
    at: float
    daemon: str
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    length: int
    pending: int
    consumers: int


@dataclass(frozen=True, slots=True)
class RateInfo:
    limit: float
    current: float
    by_blast: dict[int, float]


# --- writers (daemon) ----------------------------------------------------------------------------------------


async def heartbeat(settings: Settings, info: DaemonInfo, client: aioredis.Redis | None = None) -> None:
    r = client or redis_client(settings)
    pipe = r.pipeline(transaction=False)
    pipe.set(settings.key("daemon", info.id), json.dumps(asdict(info)), ex=HEARTBEAT_TTL_S * 4)
    pipe.zadd(settings.key("daemons"), {info.id: info.last_seen})
    await pipe.execute()


async def forget_daemon(settings: Settings, daemon_id: str, client: aioredis.Redis | None = None) -> None:
    r = client or redis_client(settings)
    await r.delete(settings.key("daemon", daemon_id))
    await r.zrem(settings.key("daemons"), daemon_id)


async def count_sent(settings: Settings, blast_id: int, n: int, client: aioredis.Redis | None = None) -> None:
    """Count n requests sent now (for messages/s per blast and overall)."""
    if n <= 0:
        return
    r = client or redis_client(settings)
    sec = int(time.time())
    pipe = r.pipeline(transaction=False)
    for key in (settings.key("sent", sec), settings.key("sent", blast_id, sec)):
        pipe.incrby(key, n)
        pipe.expire(key, RATE_WINDOW_S * 4)
    pipe.sadd(settings.key("sending_blasts"), blast_id)
    pipe.expire(settings.key("sending_blasts"), RATE_WINDOW_S * 4)
    await pipe.execute()


async def record_job(settings: Settings, job: JobRecord, client: aioredis.Redis | None = None) -> None:
    r = client or redis_client(settings)
    payload = json.dumps({k: v for k, v in asdict(job).items() if k != "id"})
    min_id = f"{int((time.time() - JOBS_MAX_AGE_S) * 1000)}-0"
    pipe = r.pipeline(transaction=False)
    pipe.xadd(settings.key("jobs"), {"job": payload}, maxlen=JOBS_MAX, approximate=True)
    pipe.xtrim(settings.key("jobs"), minid=min_id, approximate=True)
    await pipe.execute()


async def record_lateness(settings: Settings, seconds: float, client: aioredis.Redis | None = None) -> None:
    r = client or redis_client(settings)
    pipe = r.pipeline(transaction=False)
    pipe.lpush(settings.key("lateness"), f"{seconds:.4f}")
    pipe.ltrim(settings.key("lateness"), 0, LATENESS_KEEP - 1)
    await pipe.execute()


# --- readers (console, metrics) ------------------------------------------------------------------------------


async def daemons(settings: Settings, client: aioredis.Redis | None = None) -> list[DaemonInfo]:
    """Daemons that sent a heartbeat recently (dead ones drop out after a while)."""
    r = client or redis_client(settings)
    ids = [
        i.decode() if isinstance(i, bytes) else str(i) for i in await r.zrange(settings.key("daemons"), 0, -1)
    ]
    if not ids:
        return []
    raw = await r.mget([settings.key("daemon", i) for i in ids])
    out: list[DaemonInfo] = []
    stale: list[str] = []
    for daemon_id, item in zip(ids, raw, strict=True):
        if item is None:
            stale.append(daemon_id)
            continue
        out.append(DaemonInfo(**json.loads(item)))
    if stale:
        await r.zrem(settings.key("daemons"), *stale)
    return sorted(out, key=lambda d: d.id)


async def rates(settings: Settings, client: aioredis.Redis | None = None) -> RateInfo:
    """Messages per second over the last few seconds, overall and per blast."""
    r = client or redis_client(settings)
    now = int(time.time())
    secs = range(now - RATE_WINDOW_S, now)
    total = sum(int(v or 0) for v in await r.mget([settings.key("sent", s) for s in secs]))
    by_blast: dict[int, float] = {}
    for member in await r.smembers(settings.key("sending_blasts")):
        blast_id = int(member)
        n = sum(int(v or 0) for v in await r.mget([settings.key("sent", blast_id, s) for s in secs]))
        if n:
            by_blast[blast_id] = n / RATE_WINDOW_S
    return RateInfo(limit=settings.BLAST_RATE_LIMIT, current=total / RATE_WINDOW_S, by_blast=by_blast)


async def recent_jobs(
    settings: Settings, *, limit: int = 200, client: aioredis.Redis | None = None
) -> list[JobRecord]:
    r = client or redis_client(settings)
    items = cast(list[tuple[Any, dict[Any, Any]]], await r.xrevrange(settings.key("jobs"), count=limit) or [])
    out = []
    for entry_id, fields in items:
        data = json.loads(fields[b"job"] if b"job" in fields else fields["job"])
        out.append(JobRecord(**data, id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)))
    return out


async def lateness(settings: Settings, client: aioredis.Redis | None = None) -> list[float]:
    """Recent scheduling lateness values in seconds, newest first."""
    r = client or redis_client(settings)
    return [float(v) for v in await r.lrange(settings.key("lateness"), 0, LATENESS_KEEP - 1)]


async def stream_stats(
    settings: Settings, streams: Sequence[str] = WORK_STREAMS, client: aioredis.Redis | None = None
) -> list[StreamInfo]:
    """Length, pending (delivered, unacknowledged) entries and consumers of the work streams."""
    r = client or redis_client(settings)
    out = []
    for name in streams:
        key = settings.key(name)
        length = int(await r.xlen(key))
        pending = consumers = 0
        if length or await r.exists(key):
            groups: list[dict[Any, Any]] = await r.xinfo_groups(key)
            for group in groups:
                pending += int(group.get("pending", group.get(b"pending", 0)) or 0)
                consumers += int(group.get("consumers", group.get(b"consumers", 0)) or 0)
        out.append(StreamInfo(name=key, length=length, pending=pending, consumers=consumers))
    return out
