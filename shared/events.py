"""Provides the Redis side-channel the services use to wake the daemons (create, reschedule, cancel, pause …),
and the process's pooled Redis clients (`redis_client`, `close_redis_clients`).

The database stays the truth: a lost notification only delays work until the daemons' periodic sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.config import Settings
from shared.redis_conn import connection_identity, make_client

log = logging.getLogger(__name__)

#: Pub/sub channel (under the deployment prefix) carrying {"event": …, "blast_id": …} messages.
EVENTS_CHANNEL = "events"

_clients: dict[tuple[object, ...], aioredis.Redis] = {}


def redis_client(settings: Settings) -> aioredis.Redis:
    """A shared client for this process and event loop (connections are pooled)."""
    import asyncio

    key = (*connection_identity(settings), id(asyncio.get_running_loop()))
    client = _clients.get(key)
    if client is None:
        client = make_client(settings, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15)
        _clients[key] = client
    return client


async def close_redis_clients() -> None:
    for client in list(_clients.values()):
        # closing a dead connection at exit: nothing to do about it
        with contextlib.suppress(Exception):
            await client.aclose()
    _clients.clear()


async def publish(settings: Settings, event: str, **data: Any) -> bool:
    """Tell the daemons something changed. Returns False (and logs) when Redis cannot be reached."""
    payload = json.dumps({"event": event, **data})
    try:
        await redis_client(settings).publish(settings.key(EVENTS_CHANNEL), payload)
    except (RedisError, OSError) as exc:
        log.warning(
            "could not notify the daemons of %s (%s); they will notice at their next sweep", event, exc
        )
        return False
    return True
