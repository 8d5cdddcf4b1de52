"""Provides GET /metrics: Prometheus text of shared.metrics.REGISTRY, with the deployment-wide gauges (send
rate and limit, chunks in flight, queue depth, blasts by status, webhook backlog) refreshed from Redis and the
database at most once a second. Never expose it publicly: bind it to a private address or filter it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tortoise.functions import Count

from shared import metrics
from shared.config import Settings
from shared.models import Blast
from shared.services import live, webhooks
from shared.status import BlastStatus

log = logging.getLogger(__name__)

#: Gauges are refreshed from Redis and the database at most this often.
REFRESH_S = 1.0
REFRESH_TIMEOUT_S = 2.0


class GaugeRefresher:
    """Refreshes the deployment-wide gauges; a failing source leaves its gauges as they were."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._last = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, redis: aioredis.Redis | None) -> None:
        async with self._lock:
            if time.monotonic() - self._last < REFRESH_S:
                return
            self._last = time.monotonic()
            metrics.SEND_RATE_LIMIT.set(self.settings.BLAST_RATE_LIMIT)
            await asyncio.gather(self._from_db(), self._from_redis(redis))

    async def _from_db(self) -> None:
        try:
            rows: list[Any] = await asyncio.wait_for(
                Blast.annotate(n=Count("id")).group_by("status").values_list("status", "n"), REFRESH_TIMEOUT_S
            )
            counts = {s.value: 0 for s in BlastStatus}
            for status, n in rows:
                counts[BlastStatus(status).value] = int(n)
            for status, n in counts.items():
                metrics.BLASTS.labels(status).set(n)
            metrics.WEBHOOK_BACKLOG.set(await asyncio.wait_for(webhooks.backlog(), REFRESH_TIMEOUT_S))
        except Exception as exc:
            log.debug("metrics: database gauges not refreshed (%s)", type(exc).__name__)

    async def _from_redis(self, redis: aioredis.Redis | None) -> None:
        if redis is None:
            return
        try:
            rate = await asyncio.wait_for(live.rates(self.settings, client=redis), REFRESH_TIMEOUT_S)
            metrics.SEND_RATE.set(rate.current)
            daemons = await asyncio.wait_for(live.daemons(self.settings, client=redis), REFRESH_TIMEOUT_S)
            metrics.CHUNKS_IN_FLIGHT.set(sum(len(d.chunks) for d in daemons if d.alive))
            streams = await asyncio.wait_for(
                live.stream_stats(self.settings, client=redis), REFRESH_TIMEOUT_S
            )
            metrics.QUEUE_DEPTH.labels("length").set(sum(s.length for s in streams))
            metrics.QUEUE_DEPTH.labels("pending").set(sum(s.pending for s in streams))
        except Exception as exc:
            log.debug("metrics: redis gauges not refreshed (%s)", type(exc).__name__)


def render() -> tuple[bytes, str]:
    """The registry as Prometheus text, and its content type."""
    return generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST
