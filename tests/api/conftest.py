"""Fixtures of the API tests: the daemon's HTTP app with BLAST_API=1 on the test's database and Redis, an operator
and a viewer token, and the order_update template."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from daemon.http.app import create_app
from daemon.http.health import Readiness
from shared.config import Settings
from shared.services import tokens
from tests.factories import make_template

API = "/api/v1"


@dataclass
class ApiEnv:
    settings: Settings
    client: TestClient[Any, Any]
    operator: str
    viewer: str

    def headers(self, token: str | None, **extra: str) -> dict[str, str]:
        out = dict(extra)
        if token is not None:
            out["Authorization"] = f"Bearer {token}"
        return out

    async def get(self, path: str, auth: str | None = "operator", **kwargs: Any) -> ClientResponse:
        return await self.client.get(API + path, headers=self.headers(self._token(auth)), **kwargs)

    async def post(
        self, path: str, auth: str | None = "operator", headers: dict[str, str] | None = None, **kwargs: Any
    ) -> ClientResponse:
        return await self.client.post(
            API + path, headers=self.headers(self._token(auth), **(headers or {})), **kwargs
        )

    def _token(self, auth: str | None) -> str | None:
        return {"operator": self.operator, "viewer": self.viewer}.get(auth or "", auth)


@pytest.fixture
async def make_api(
    make_settings: Callable[..., Settings], db: Settings, redis_client: Any
) -> AsyncIterator[Callable[..., Any]]:
    """Start the daemon's HTTP app with the API on (settings overrides as keyword arguments)."""
    clients: list[TestClient[Any, Any]] = []
    operator = (await tokens.create_token(name="crm", role="operator", actor="test")).token
    viewer = (await tokens.create_token(name="dashboard", role="viewer", actor="test")).token
    await make_template()

    async def start(**overrides: Any) -> ApiEnv:
        settings = make_settings(BLAST_API=True, **overrides)
        readiness = Readiness(schema_migrated=True, recovery_done=True, receiver_running=True)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings, readiness=readiness)))
        await client.start_server()
        clients.append(client)
        return ApiEnv(settings, client, operator, viewer)

    try:
        yield start
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> ApiEnv:
    env: ApiEnv = await make_api()
    return env


async def problem_of(resp: ClientResponse, status: int) -> dict[str, Any]:
    """The problem+json body of an error answer, checked to be one."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["status"] == status and body["type"] == "about:blank"
    assert isinstance(body["detail"], str) and "\n" not in body["detail"]
    return body
