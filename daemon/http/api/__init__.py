"""Provides the authenticated HTTP API under /api/v1/ (BLAST_API=1): blasts, recipients, templates, search, queue.

It is mounted on the webhook server (`mount_api`), or served by a listener of its own when BLAST_API_PORT is set
(`create_api_server`). Handlers call the same services as the CLI; see handlers.OPERATIONS for the routes and
openapi.document() for their description.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from daemon.http.api.auth import REDIS, SETTINGS, auth_middleware
from daemon.http.api.handlers import OPERATIONS
from daemon.http.api.openapi import document
from daemon.http.api.problems import API_PREFIX, problems_middleware
from shared.config import Settings
from shared.redis_conn import make_client

__all__ = ["API_PREFIX", "create_api", "create_api_server", "mount_api"]


def create_api(settings: Settings) -> web.Application:
    """The API as an aiohttp sub-application (mount it at API_PREFIX)."""
    api = web.Application(middlewares=[problems_middleware, auth_middleware])
    api[SETTINGS] = settings
    api.cleanup_ctx.append(_redis)
    for op in OPERATIONS:
        api.router.add_route(op.method, op.path, op.handler)
    api.router.add_get("/openapi.json", _openapi)
    return api


def mount_api(app: web.Application, settings: Settings) -> None:
    """Serve the API under /api/v1/ of `app` (the webhook server)."""
    app.add_subapp(API_PREFIX, create_api(settings))


def create_api_server(settings: Settings) -> web.Application:
    """An application that serves only the API (for BLAST_API_HOST/BLAST_API_PORT)."""
    app = web.Application()
    mount_api(app, settings)
    return app


async def _redis(app: web.Application) -> AsyncIterator[None]:
    app[REDIS] = make_client(
        app[SETTINGS], socket_connect_timeout=1, socket_timeout=2, health_check_interval=10
    )
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await app[REDIS].aclose()


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=json.dumps(document()).encode(), content_type="application/json")
