"""Where the API listens: off by default, beside the webhook with BLAST_API=1, on its own listener with
BLAST_API_PORT (and then not beside the webhook)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from daemon.app import _run_api
from daemon.http.app import create_app
from daemon.http.health import Readiness
from shared.config import Settings
from shared.errors import ConfigError
from shared.services import tokens
from tests.conftest import free_port
from tests.daemon.webhook_helpers import start_client


async def _paths(settings: Settings) -> tuple[int, int]:
    # served as the daemon serves it: POST /webhook on the lean intake, these handed over to aiohttp
    client = await start_client(create_app(settings, readiness=Readiness()))
    try:
        api = await client.get("/api/v1/openapi.json")
        health = await client.get("/healthz")
        return api.status, health.status
    finally:
        await client.close()


async def test_off_by_default_and_beside_the_webhook_when_on(
    make_settings: Callable[..., Settings], db: Settings
) -> None:
    assert db.BLAST_API is False
    assert (await _paths(make_settings()))[0] == 404
    assert (await _paths(make_settings(BLAST_API=True)))[0] == 200
    # with a port of its own, the webhook server does not serve it
    assert (await _paths(make_settings(BLAST_API=True, BLAST_API_PORT=free_port())))[0] == 404


def test_api_host_needs_api_port(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="BLAST_API_HOST needs BLAST_API_PORT"):
        make_settings(BLAST_API_HOST="0.0.0.0")
    settings = make_settings(BLAST_API=True, BLAST_API_PORT=9000)
    assert settings.api_has_own_listener and settings.api_host == settings.BLAST_HTTP_HOST
    assert not make_settings(BLAST_API_PORT=9000).api_has_own_listener  # BLAST_API=0 wins


async def test_own_listener_serves_the_api(
    make_settings: Callable[..., Settings], db: Settings, redis_client: Any
) -> None:
    port = free_port()
    settings = make_settings(BLAST_API=True, BLAST_API_HOST="127.0.0.1", BLAST_API_PORT=port)
    token = (await tokens.create_token(name="crm", role="viewer", actor="test")).token
    stop = asyncio.Event()
    task = asyncio.create_task(_run_api(settings, stop))
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 10
            while True:
                try:
                    resp = await session.get(
                        f"http://127.0.0.1:{port}/api/v1/blasts", headers={"Authorization": f"Bearer {token}"}
                    )
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "the API listener did not start"
                    await asyncio.sleep(0.05)
            assert resp.status == 200 and await resp.json() == {"items": [], "next_cursor": None}
            assert (await session.get(f"http://127.0.0.1:{port}/webhook")).status == 404
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
