"""GET /healthz: 200 only when the daemon is ready and its database and Redis answer; 503 with the reason."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from daemon.http.app import create_app
from daemon.http.health import Readiness
from shared.config import Settings
from shared.db import close_db, open_db
from tests.conftest import PrivateRedis
from tests.daemon.webhook_helpers import WebhookEnv, wenv

__all__ = ["wenv"]


async def test_ready_daemon_answers_200(wenv: WebhookEnv) -> None:
    resp = await wenv.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_503_until_recovery_is_done_and_the_receiver_runs(wenv: WebhookEnv) -> None:
    wenv.readiness.recovery_done = False
    wenv.readiness.receiver_running = False
    resp = await wenv.client.get("/healthz")
    assert resp.status == 503
    reasons = (await resp.json())["reasons"]
    assert "recovery sweep not done yet" in reasons
    assert "task receiver not running" in reasons
    wenv.readiness.recovery_done = wenv.readiness.receiver_running = True
    assert (await wenv.client.get("/healthz")).status == 200


async def test_503_before_the_schema_is_migrated(wenv: WebhookEnv) -> None:
    wenv.readiness.schema_migrated = False
    resp = await wenv.client.get("/healthz")
    assert resp.status == 503
    assert "database schema not migrated yet" in (await resp.json())["reasons"]


async def test_503_when_redis_is_stopped(make_settings: Any, private_redis: PrivateRedis) -> None:
    settings: Settings = make_settings(REDIS_URL=private_redis.url)
    await open_db(settings)
    readiness = Readiness(schema_migrated=True, recovery_done=True, receiver_running=True)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings, readiness=readiness)))
    await client.start_server()
    try:
        assert (await client.get("/healthz")).status == 200
        private_redis.stop()
        resp = await client.get("/healthz")
        assert resp.status == 503
        assert any("redis" in r for r in (await resp.json())["reasons"])
        private_redis.start()
        assert (await client.get("/healthz")).status == 200  # comes back by itself
    finally:
        await client.close()
        await close_db()
