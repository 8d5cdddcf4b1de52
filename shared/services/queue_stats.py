"""Provides the queue picture both programs show: work stream depths, live daemons and the send rate (the
shape of `blast-console queue stats --json`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypedDict

from shared.config import Settings
from shared.services import live


class StreamJson(TypedDict):
    name: str
    length: int
    pending: int
    consumers: int


class DaemonJson(TypedDict):
    id: str
    host: str
    last_seen: float
    chunks: list[str]


class RateJson(TypedDict):
    limit: float
    current: float


class QueueStatsJson(TypedDict):
    streams: list[StreamJson]
    daemons: list[DaemonJson]
    rate: RateJson


@dataclass(frozen=True, slots=True)
class QueueStats:
    streams: list[live.StreamInfo]
    daemons: list[live.DaemonInfo]
    rate: live.RateInfo
    read_at: float

    def to_json(self) -> QueueStatsJson:
        return {
            "streams": [
                {"name": s.name, "length": s.length, "pending": s.pending, "consumers": s.consumers}
                for s in self.streams
            ],
            "daemons": [
                {"id": d.id, "host": d.host, "last_seen": d.last_seen, "chunks": list(d.chunks)}
                for d in self.daemons
            ],
            "rate": {"limit": self.rate.limit, "current": self.rate.current},
        }


async def queue_stats(settings: Settings) -> QueueStats:
    """Read the work streams, the daemons' heartbeats and the current rate from Redis.

    Raises:
        redis.exceptions.RedisError, OSError: Redis cannot be reached.
    """
    streams = await live.stream_stats(settings)
    daemons = await live.daemons(settings)
    rate = await live.rates(settings)
    return QueueStats(streams=streams, daemons=daemons, rate=rate, read_at=time.time())
