"""Provides the daemon's taskiq broker: RedisStreamBroker (acknowledged delivery) under the deployment prefix.

The stream is `{prefix}:taskiq` (what shared.services.live.stream_stats reads), the consumer group
`{prefix}:workers`. Reads take one message at a time, so a busy daemon leaves queued chunks to idle ones. The
group is created from the stream's start ("0"), so a group re-created after a FLUSHALL or Redis restart still
gets the messages queued meanwhile; chunks are idempotent, so a redelivery costs nothing. The stream is capped
at STREAM_MAXLEN entries (approximately); acknowledged chunks are what gets trimmed.

The broker's connections retry a command on a connection error or timeout (on a new connection, after a short
backoff): after a Redis restart the pool still holds connections to the old server, and the first XADD on one of
them would fail although Redis is back. A repeated XADD is harmless (the database leases stop double sends).

The pool comes from the project's one factory (shared.redis_conn), not from taskiq-redis's URL parsing: so the
ACL user and TLS hold for the work queue too, and with REDIS_SENTINELS the stream broker keeps all it does
(acknowledgement, reclaim of unacknowledged messages by XAUTOCLAIM, the group re-created by the receiver loop)
over a Sentinel-managed pool that follows the master through a failover. (taskiq-redis's own Sentinel broker
has no reclaim.) Entries lost in an asynchronous failover are re-derived from the database, as after a FLUSHALL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq_redis import RedisStreamBroker

from daemon.dispatch import SEND_CHUNK
from daemon.tasks.send import send_chunk
from shared.config import Settings
from shared.redis_conn import make_pool

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000
# : A message unacknowledged this long is handed to another daemon (chunks last ~10 s; leases guard
# duplicates).
RECLAIM_MS = 120_000
XREAD_BLOCK_MS = 1000
#: Retries of a broker command after a connection error or timeout, each on a new connection after a backoff
#: growing from RETRY_BASE_S (with jitter, at most RETRY_CAP_S): well under a second in all.
RETRIES = 3
RETRY_BASE_S = 0.05
RETRY_CAP_S = 0.4


def stream_name(settings: Settings) -> str:
    return settings.key("taskiq")


def group_name(settings: Settings) -> str:
    return settings.key("workers")


class _Broker(RedisStreamBroker):
    """RedisStreamBroker whose acknowledgement survives a Redis outage.

    A chunk that ends while Redis is down cannot be acknowledged; taskiq would leave the ConnectionError in a
    task nobody awaits ("Task exception was never retrieved"). The message is harmless either way: a restarted
    Redis has forgotten it, and one that was only unreachable hands it out again after RECLAIM_MS, when the
    chunk finds its blast's work in the database (chunks are idempotent).
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        connection = {
            name: kwargs.pop(name)
            for name in ("socket_connect_timeout", "socket_timeout", "health_check_interval", "retry")
            if name in kwargs
        }
        super().__init__(settings.redis_url, **kwargs)
        # taskiq-redis made a pool from the URL alone (it connects lazily: nothing to close); use ours.
        self.connection_pool = make_pool(settings, **connection)  # type: ignore[assignment]  # a plain pool

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        ack = super()._ack_generator(id, queue_name)

        async def _ack() -> None:
            try:
                await ack()
            except (RedisError, OSError) as exc:
                log.warning("chunk message %s not acknowledged, Redis unreachable (%s)", id, exc)

        return _ack


def build_broker(settings: Settings, *, consumer_name: str | None = None) -> RedisStreamBroker:
    """The broker with the daemon's tasks registered (call `startup()` before anything is sent)."""
    broker = _Broker(
        settings,
        queue_name=stream_name(settings),
        consumer_group_name=group_name(settings),
        consumer_name=consumer_name,
        consumer_id="0",
        maxlen=STREAM_MAXLEN,
        approximate=True,
        xread_block=XREAD_BLOCK_MS,
        xread_count=1,
        idle_timeout=RECLAIM_MS,
        unacknowledged_lock_timeout=5,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=15,
        retry=broker_retry(),
    )
    broker.register_task(send_chunk, task_name=SEND_CHUNK)
    return broker


def broker_retry() -> Retry:
    """The retry policy of the broker's connections (each connection copies it)."""
    return Retry(
        ExponentialWithJitterBackoff(cap=RETRY_CAP_S, base=RETRY_BASE_S),
        RETRIES,
        supported_errors=(RedisConnectionError, RedisTimeoutError),
    )


async def ensure_group(settings: Settings, client: aioredis.Redis) -> None:
    """Create the stream and its consumer group if missing (after a FLUSHALL or a Redis restart)."""
    try:
        await client.xgroup_create(stream_name(settings), group_name(settings), id="0", mkstream=True)
        log.info("work queue %s: consumer group created", stream_name(settings))
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
