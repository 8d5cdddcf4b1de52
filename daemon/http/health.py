"""Provides readiness: what the daemon flips as it starts, and GET /healthz, which also pings the database and
Redis for real.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from tortoise import connections

from shared.services.webhooks import EventWriter

log = logging.getLogger(__name__)

#: Seconds each dependency may take to answer a health check.
PING_TIMEOUT_S = 1.5


@dataclass(slots=True)
class Readiness:
    """Start-up milestones of the daemon; /healthz answers 200 only once all are true (and the pings pass).

    Attributes:
        schema_migrated: the database schema is at this program's version.
        recovery_done: the startup recovery sweep finished.
        receiver_running: the taskiq receiver takes work.
    """

    schema_migrated: bool = False
    recovery_done: bool = False
    receiver_running: bool = False

    def reasons(self) -> list[str]:
        """What is not ready yet, in words."""
        out = []
        if not self.schema_migrated:
            out.append("database schema not migrated yet")
        if not self.recovery_done:
            out.append("recovery sweep not done yet")
        if not self.receiver_running:
            out.append("task receiver not running")
        return out


async def ping_database() -> str | None:
    """None if the database answers, else why not."""
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), PING_TIMEOUT_S)
    except TimeoutError:
        return "database does not answer"
    except Exception as exc:
        return f"database unreachable ({type(exc).__name__})"
    return None


async def ping_redis(client: aioredis.Redis | None) -> str | None:
    """None if Redis answers, else why not."""
    if client is None:
        return "redis client not started"
    try:
        await asyncio.wait_for(client.ping(), PING_TIMEOUT_S)
    except TimeoutError:
        return "redis does not answer"
    except Exception as exc:
        return f"redis unreachable ({type(exc).__name__})"
    return None


async def check(readiness: Readiness, redis: aioredis.Redis | None, writer: EventWriter | None) -> list[str]:
    """Every reason the daemon is not ready (empty when it is)."""
    reasons = readiness.reasons()
    if writer is not None and not writer.running:
        reasons.append("webhook receiver not running")
    db_reason, redis_reason = await asyncio.gather(ping_database(), ping_redis(redis))
    reasons.extend(r for r in (db_reason, redis_reason) if r is not None)
    return reasons


def health_response(reasons: list[str]) -> web.Response:
    if reasons:
        return web.json_response({"status": "unavailable", "reasons": reasons}, status=503)
    return web.json_response({"status": "ok"})
