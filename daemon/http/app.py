"""Provides the daemon's one aiohttp application: /webhook (Meta), /healthz, /metrics, and with BLAST_API=1 the
HTTP API under /api/v1/ (unless BLAST_API_PORT gives it a listener of its own: daemon.http.api).

Deployment: Meta only calls HTTPS URLs, so /webhook is published through a TLS reverse proxy (nginx, Caddy …)
that forwards to BLAST_HTTP_HOST:BLAST_HTTP_PORT; /metrics and /healthz must not be public (keep them off the
proxy, or allow only the monitoring hosts). No access log is written: GET /webhook carries the verify token in
its query string.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from daemon.http import health, webhook
from daemon.http.health import Readiness
from daemon.http.metrics import GaugeRefresher, render
from shared.config import Settings
from shared.redis_conn import make_client
from shared.services.webhooks import EventWriter

log = logging.getLogger(__name__)

__all__ = ["Readiness", "bound_port", "create_app", "serve"]

SETTINGS = web.AppKey("settings", Settings)
READINESS = web.AppKey("readiness", Readiness)
WRITER = web.AppKey("writer", EventWriter)
REDIS = web.AppKey("redis", aioredis.Redis)
GAUGES = web.AppKey("gauges", GaugeRefresher)


def create_app(
    settings: Settings, *, readiness: Readiness, writer: EventWriter | None = None
) -> web.Application:
    """The daemon's HTTP application.

    Tortoise must be initialised before the app starts (the webhook writer stores events through it). The app
    owns its webhook event writer and a Redis client for health checks; both start and stop with the app.

    Args:
        settings: the daemon's settings (verify token, app secret, body limit, Redis).
        readiness: the start-up milestones the daemon flips; /healthz reads them.
        writer: the durable webhook inbox (default: a new one).

    The webhook's body limit is the application's; the API reads its bodies itself (BLAST_API_MAX_UPLOAD_MB).
    """
    # aiohttp stops reading a body past the limit (also a chunked one); the handler answers it with 413.
    app = web.Application(client_max_size=settings.BLAST_WEBHOOK_MAX_BODY)
    app[SETTINGS] = settings
    app[READINESS] = readiness
    app[WRITER] = writer or EventWriter()
    app[GAUGES] = GaugeRefresher(settings)
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/webhook", _verify)
    app.router.add_post("/webhook", _receive)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    if settings.BLAST_API and not settings.api_has_own_listener:
        from daemon.http.api import mount_api  # deferred: a daemon without the API does not import it

        mount_api(app, settings)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[WRITER].start()
    app[REDIS] = make_client(settings, socket_connect_timeout=1, socket_timeout=1, health_check_interval=10)
    try:
        yield
    finally:
        await app[WRITER].close()
        with contextlib.suppress(Exception):
            await app[REDIS].aclose()


async def _verify(request: web.Request) -> web.Response:
    return webhook.verify(request, request.app[SETTINGS])


async def _receive(request: web.Request) -> web.Response:
    return await webhook.receive(request, request.app[SETTINGS], request.app[WRITER])


async def _healthz(request: web.Request) -> web.Response:
    app = request.app
    reasons = await health.check(app[READINESS], app.get(REDIS), app[WRITER])
    return health.health_response(reasons)


async def _metrics(request: web.Request) -> web.Response:
    await request.app[GAUGES].refresh(request.app.get(REDIS))
    body, content_type = render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving `app` (stop it with `await runner.cleanup()`); port 0 picks a free one (bound_port).

    POST /webhook goes through the lean intake (daemon.http.intake) unless BLAST_WEBHOOK_INTAKE=aiohttp.
    """
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    settings = app[SETTINGS]
    site: web.TCPSite
    if settings.BLAST_WEBHOOK_INTAKE == "lean":
        from daemon.http.intake import LeanSite  # POST /webhook lean, every other request to aiohttp

        site = LeanSite(runner, host, port, settings=settings, writer=app[WRITER], backlog=1024)
    else:
        site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info(
        "HTTP server listening on %s:%s (webhook intake: %s)",
        host,
        bound_port(runner),
        settings.BLAST_WEBHOOK_INTAKE,
    )
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner listens on (useful with port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the HTTP server is not listening")
