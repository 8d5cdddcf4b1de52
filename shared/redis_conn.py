"""Provides the one factory of Redis connections: every client the programs open (work queue, limiter, events,
heartbeats, console) comes from here, so that the ACL user, TLS and Sentinel settings hold for all of them.

Direct: a pool from the URL (`Settings.redis_url`, rediss:// for TLS) plus the user and the TLS files. Sentinel
(REDIS_SENTINELS): a pool whose connections ask the sentinels for the current master of REDIS_SENTINEL_MASTER
each time they connect, and drop themselves when the server they talk to became a replica (redis-py's
SentinelConnectionPool); so a client follows a failover by itself: the command that hit the old master fails
(or is retried by the caller's Retry), the next connection goes to the new one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.config import Settings, mask_url, node_text
from shared.text import first_line

#: A sentinel that does not answer within this long is skipped for the next one.
SENTINEL_TIMEOUT_S = 1.0
#: Retries of a command after a connection error, each on a new connection after a backoff growing from
#: RETRY_BASE_S (with jitter, at most RETRY_CAP_S).
RETRIES = 3
RETRY_BASE_S = 0.05
RETRY_CAP_S = 0.4


def tls_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection arguments for TLS (empty when TLS is off)."""
    if not settings.redis_tls:
        return {}
    out: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings.REDIS_TLS_CA_FILE:
        out["ssl_ca_certs"] = settings.REDIS_TLS_CA_FILE
    if settings.REDIS_TLS_CERT_FILE:
        out["ssl_certfile"] = settings.REDIS_TLS_CERT_FILE
        out["ssl_keyfile"] = settings.REDIS_TLS_KEY_FILE
    return out


def _url_parts(settings: Settings) -> tuple[str | None, str | None, int]:
    """User, password and database number of the URL (for the Sentinel-managed connections)."""
    parts = urlsplit(settings.redis_url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    path = parts.path.lstrip("/")
    db = int(path) if path.isdigit() else settings.REDIS_DB
    return user or settings.REDIS_USERNAME, password, db


class _SentinelPool(SentinelConnectionPool):
    """SentinelConnectionPool whose full disconnect (the client's `aclose()`, the broker's shutdown) also closes
    the connections to the sentinels, which redis-py leaves open."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # not the partial disconnect redis-py does when the master changes
            for sentinel in self.sentinel_manager.sentinels:
                with contextlib.suppress(Exception):
                    await sentinel.connection_pool.disconnect()


def default_retry() -> Retry:
    """Every connection's retry unless the caller gives its own: a command that meets a dead connection (one
    to a restarted server, or to a master that failed over) is sent again on a new one, after a short backoff
    (well under a second in all). Only connection errors: a timeout may mean the command ran, and waiting for it
    again would hold the caller for several socket timeouts."""
    return Retry(
        ExponentialWithJitterBackoff(cap=RETRY_CAP_S, base=RETRY_BASE_S),
        RETRIES,
        supported_errors=(RedisConnectionError,),
    )


def make_pool(settings: Settings, **options: Any) -> ConnectionPool:
    """A connection pool to the deployment's Redis (its master, with Sentinel).

    Args:
        settings: the deployment.
        options: connection arguments (socket_timeout, retry, health_check_interval …); `retry` defaults to
            `default_retry()`.

    Returns:
        A pool; with REDIS_SENTINELS a SentinelConnectionPool that follows failovers.
    """
    options.setdefault("retry", default_retry())
    if settings.redis_sentinels:
        user, password, db = _url_parts(settings)
        sentinel_password = settings.REDIS_SENTINEL_PASSWORD
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "password": sentinel_password.get_secret_value() if sentinel_password else None,
        }
        tls = tls_kwargs(settings)
        if tls:
            sentinel_kwargs.update(ssl=True, **tls)
        manager = Sentinel(settings.redis_sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        return _SentinelPool(  # type: ignore[no-untyped-call]  # likewise
            settings.REDIS_SENTINEL_MASTER,
            manager,
            username=user,
            password=password,
            db=db,
            ssl=bool(tls),
            **tls,
            **options,
        )
    direct: dict[str, Any] = dict(options)
    direct.update(tls_kwargs(settings))
    if settings.REDIS_USERNAME and not urlsplit(settings.redis_url).username:
        direct["username"] = settings.REDIS_USERNAME
    return ConnectionPool.from_url(settings.redis_url, **direct)


def make_client(settings: Settings, **options: Any) -> aioredis.Redis:
    """A client that owns its pool (`aclose()` closes both); see `make_pool` for the arguments."""
    return aioredis.Redis.from_pool(make_pool(settings, **options))


def connection_identity(settings: Settings) -> tuple[object, ...]:
    """What tells two deployments' Redis connections apart (a cache key; it holds secrets: never print it)."""
    return (
        settings.redis_url,
        settings.REDIS_USERNAME,
        settings.REDIS_SENTINELS,
        settings.REDIS_SENTINEL_MASTER,
        settings.REDIS_TLS_CA_FILE,
        settings.REDIS_TLS_CERT_FILE,
    )


def target_text(settings: Settings) -> str:
    """Where the settings point, password masked: the URL, or the sentinels and the master's name."""
    if settings.redis_sentinels:
        nodes = ",".join(node_text(h, p) for h, p in settings.redis_sentinels)
        return f"sentinels {nodes} master {settings.REDIS_SENTINEL_MASTER!r}"
    return mask_url(settings.redis_url)


@dataclass(frozen=True, slots=True)
class RedisServer:
    """The Redis a client talks to right now.

    Attributes:
        address: host:port (or the socket path).
        role: master or replica, as the server says (INFO replication).
        is_tls: whether the connection is encrypted.
        version: the server's version.
        via_sentinel: the master's name when found through Sentinel.
        maxmemory_policy: the server's eviction policy (maxmemory-policy).
    """

    address: str
    role: str
    is_tls: bool
    version: str
    via_sentinel: str | None = None
    maxmemory_policy: str | None = None

    def text(self) -> str:
        """e.g. "10.0.0.6:6379 (master, TLS yes, via Sentinel 'mymaster')"."""
        via = f", via Sentinel {self.via_sentinel!r}" if self.via_sentinel else ""
        return f"{self.address} ({self.role}, TLS {'yes' if self.is_tls else 'no'}{via})"


async def describe_server(settings: Settings, client: aioredis.Redis) -> RedisServer:
    """Which Redis `client` reaches: address, role, TLS, version, eviction policy.

    Raises:
        redis.exceptions.RedisError, OSError: Redis cannot be reached.
    """
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    try:
        path = getattr(conn, "path", None)
        address = str(path) if path else f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"
        await conn.send_command("INFO", "server")
        server = _parse_info(await conn.read_response())
        await conn.send_command("INFO", "replication")
        replication = _parse_info(await conn.read_response())
        # INFO, not CONFIG GET: the ACL user the docs recommend has +info but no @dangerous CONFIG.
        await conn.send_command("INFO", "memory")
        memory = _parse_info(await conn.read_response())
    finally:
        await pool.release(conn)
    role = str(replication.get("role", "?"))
    policy = memory.get("maxmemory_policy") or None
    return RedisServer(
        address=address,
        role="replica" if role == "slave" else role,
        is_tls=settings.redis_tls,
        version=str(server.get("redis_version", "?")),
        via_sentinel=settings.REDIS_SENTINEL_MASTER if settings.redis_sentinels else None,
        maxmemory_policy=policy,
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _parse_info(raw: object) -> dict[str, str]:
    """INFO's text (bytes or str, raw from the connection) as a dict."""
    if isinstance(raw, dict):
        return {str(k): _text(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for line in _text(raw).splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


#: Eviction policies under which Redis may drop keys the daemons rely on (bookings, the limiter, the stream).
EVICTING_POLICIES = frozenset(
    {
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    }
)


def eviction_warning(policy: str | None) -> str:
    """The warning for an evicting maxmemory-policy (the daemon at startup, `check`)."""
    return (
        f"maxmemory-policy is {policy}: when Redis is full it may evict keys the daemons need (chunk bookings, "
        "the rate limiter, the work queue); set maxmemory-policy noeviction (blast then pauses sending while "
        "Redis is full instead of losing keys)"
    )


def redis_hint(exc: BaseException) -> str | None:
    """The fix for a Redis error that is the deployment's configuration or state rather than a passing outage:
    refused login, missing ACL right, untrusted certificate, a full Redis, a replica. None for anything else."""
    from redis.exceptions import AuthenticationError, NoPermissionError, ReadOnlyError

    text = str(exc)
    if isinstance(exc, AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        return "Redis refused the login: check REDIS_USERNAME and REDIS_PASSWORD (or the user:password in REDIS_URL)"
    if isinstance(exc, NoPermissionError) or "NOPERM" in text:
        return (
            "the Redis ACL user lacks a right blast needs: grant the rules in docs/OPERATIONS.md (Redis ACL)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "Redis's TLS certificate is not trusted: set REDIS_TLS_CA_FILE to the CA that signed it"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "TLS mismatch: REDIS_TLS/rediss:// must match whether Redis listens with TLS (tls-port)"
    if type(exc).__name__ == "MasterNotFoundError":
        return (
            "no sentinel names a master: check REDIS_SENTINELS and REDIS_SENTINEL_MASTER, and that the sentinels "
            "run (during a failover this lasts a few seconds)"
        )
    if is_redis_full(exc):
        return "Redis is full (maxmemory reached, noeviction): raise maxmemory or free memory; sending resumes by itself"
    if isinstance(exc, ReadOnlyError):
        return "this Redis is a read-only replica: point REDIS_URL at the master, or use REDIS_SENTINELS"
    return None


def redis_reason(exc: BaseException) -> str:
    """One line: what Redis said, and the fix when the error is a known configuration mistake."""
    first = first_line(exc, limit=200)
    hint = redis_hint(exc)
    return f"{first} ({hint})" if hint else first


def is_redis_full(exc: BaseException) -> bool:
    """True for Redis's refusal of a write under maxmemory with noeviction ("OOM command not allowed …")."""
    from redis.exceptions import OutOfMemoryError, ResponseError

    # redis-py strips the "OOM" prefix into OutOfMemoryError; a Lua script's refusal stays a ResponseError.
    return isinstance(exc, ResponseError) and (
        isinstance(exc, OutOfMemoryError) or "command not allowed when used memory" in str(exc)
    )
