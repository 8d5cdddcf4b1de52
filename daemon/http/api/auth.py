"""Provides the API's authentication: Bearer tokens, roles, and a per-address limit on failed attempts.

A viewer token may only read (GET); every other method needs an operator token. Failed attempts (a wrong token,
not a request without one) are counted per client address in Redis (shared by all daemons) and logged with the address and the reason, never the token;
past AUTH_FAILURES_ALLOWED in AUTH_WINDOW_S the address gets 429 until the window ends. When Redis cannot be
reached the limit is skipped (logged), so the API does not go down with it.
"""

from __future__ import annotations

import ipaddress
import logging

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from daemon.http.api.problems import API_PREFIX, ApiProblem, Handler
from shared.config import Settings
from shared.services import tokens
from shared.services.tokens import Role, TokenInfo

log = logging.getLogger(__name__)

#: Failed attempts an address may make per window before it is refused with 429.
AUTH_FAILURES_ALLOWED = 10
AUTH_WINDOW_S = 60
#: Paths answered without a token (the API's description holds no data).
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/openapi.json"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

TOKEN = web.RequestKey("token", TokenInfo)
SETTINGS = web.AppKey("api_settings", Settings)
REDIS = web.AppKey("api_redis", aioredis.Redis)

_CHALLENGE = 'Bearer realm="blast"'


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a proxy on this host, the address it forwarded.

    Only a loopback peer is trusted to say who the client is (the last X-Forwarded-For entry, which that proxy
    appended): anyone else could write the header themselves to escape the limit.
    """
    peer = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        try:
            is_local = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            is_local = False
        if is_local:
            last = forwarded.split(",")[-1].strip()
            if last:
                return last[:64]
    return peer


def request_token(request: web.Request) -> TokenInfo:
    """The token the request was authenticated with."""
    return request[TOKEN]


class FailureLimiter:
    """Counts failed attempts per address in Redis: {prefix}:api:auth-failures:{address}, expiring per window."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis

    def _key(self, address: str) -> str:
        return self.settings.key("api", "auth-failures", address)

    async def blocked_for(self, address: str) -> int:
        """Seconds this address must still wait (0: it may try)."""
        try:
            count = await self.redis.get(self._key(address))
            if count is None or int(count) < AUTH_FAILURES_ALLOWED:
                return 0
            ttl = int(await self.redis.ttl(self._key(address)))
        except (RedisError, OSError) as exc:
            log.warning("API: failed-login limit skipped, Redis unreachable (%s)", exc)
            return 0
        return max(ttl, 1)

    async def failed(self, address: str) -> None:
        key = self._key(address)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, AUTH_WINDOW_S, nx=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("API: failed login not counted, Redis unreachable (%s)", exc)


def _unauthorized(detail: str, *, invalid: bool) -> ApiProblem:
    challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
    return ApiProblem(401, detail, headers={"WWW-Authenticate": challenge})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the Bearer token, refuse a viewer's changes, limit failed attempts per address."""
    if request.match_info.route.resource is None or request.path in PUBLIC_PATHS:
        # Unknown paths get their 404 without a token: learning that a path is wrong reveals nothing.
        return await handler(request)
    app = request.app
    limiter = FailureLimiter(app[SETTINGS], app[REDIS])
    address = client_address(request)
    wait = await limiter.blocked_for(address)
    if wait:
        log.warning(
            "API: %s %s from %s refused: too many failed logins", request.method, request.path, address
        )
        raise ApiProblem(
            429,
            f"too many failed logins from {address}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not presented.strip():
        if header:  # credentials that are wrong count as a failed attempt; asking without any does not
            await limiter.failed(address)
        log.warning(
            "API: %s %s from %s refused: %s",
            request.method,
            request.path,
            address,
            "no token" if not header else "not a Bearer token",
        )
        raise _unauthorized(
            "a token is needed: send 'Authorization: Bearer <token>' (blast-console token create)",
            invalid=bool(header),
        )
    result = await tokens.authenticate(presented.strip())
    if result.token is None:
        await limiter.failed(address)
        log.warning("API: %s %s from %s refused: %s", request.method, request.path, address, result.reason)
        raise _unauthorized(
            "the token is not valid (unknown or revoked); ask for a new one (blast-console token create)",
            invalid=True,
        )
    token = result.token
    if request.method not in READ_METHODS and token.role != Role.OPERATOR:
        log.warning(
            "API: %s %s by token %s refused: a %s token only reads",
            request.method,
            request.path,
            token.name,
            token.role.value,
        )
        raise ApiProblem(
            403,
            f"token {token.name} is a {token.role.value} token: it may only read "
            f"({request.method} {request.path} needs an operator token)",
        )
    request[TOKEN] = token
    return await handler(request)
