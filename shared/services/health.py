"""Provides reachability checks of the database and Redis, and detection of a read-only database role."""

from __future__ import annotations

import asyncio
import os

from redis.exceptions import RedisError
from tortoise import connections

from shared.config import Settings
from shared.db import is_sqlite, sqlite_path
from shared.events import redis_client
from shared.redis_conn import describe_server, redis_reason
from shared.text import first_line

PING_TIMEOUT_S = 2.0


async def ping_db() -> str | None:
    """None when the database answers, else a one-line reason."""
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), PING_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {PING_TIMEOUT_S:.0f} s"
    except Exception as exc:
        return first_line(exc, limit=200)
    return None


async def ping_redis(settings: Settings) -> str | None:
    """None when Redis answers, else a one-line reason (never the URL: it may carry the password)."""
    try:
        await asyncio.wait_for(redis_client(settings).ping(), PING_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {PING_TIMEOUT_S:.0f} s"
    except (RedisError, OSError) as exc:
        return redis_reason(exc)
    return None


async def describe_redis(settings: Settings) -> str | None:
    """Which Redis the programs use, e.g. "Redis 10.0.0.6:6379 (master, TLS yes, via Sentinel 'mymaster')";
    None when it cannot be reached."""
    try:
        server = await asyncio.wait_for(describe_server(settings, redis_client(settings)), PING_TIMEOUT_S)
    except (TimeoutError, RedisError, OSError):
        return None
    return f"Redis {server.text()}"


async def database_is_read_only(settings: Settings) -> bool:
    """True when this user cannot change blasts: a PostgreSQL role without UPDATE on `blast`, a read-only
    PostgreSQL transaction default, or an SQLite file this OS user may not write.
    """
    url = settings.DATABASE_URL
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is None:
            return False
        return path.exists() and not os.access(path, os.W_OK)
    conn = connections.get("default")
    _, rows = await conn.execute_query(
        "SELECT has_table_privilege(current_user, 'blast', 'UPDATE') AS can_update, "
        "current_setting('default_transaction_read_only') AS ro, pg_is_in_recovery() AS replica"
    )
    row = dict(rows[0])
    return (not row["can_update"]) or str(row["ro"]).lower() == "on" or bool(row["replica"])
