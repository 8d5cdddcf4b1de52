"""Tests of the sandbox provider and the factory: simulated sends, statuses, templates, credentials."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.config import Settings
from shared.errors import ConfigError
from shared.fake_graph import sign
from shared.whatsapp import (
    SANDBOX_BANNER,
    CloudClient,
    ErrorClass,
    SandboxProvider,
    SendAccepted,
    WhatsAppProvider,
    build_provider,
    classify_status_errors,
    require_cloud_credentials,
    webhook_app_secret,
)
from shared.whatsapp.sandbox import SANDBOX_APP_SECRET

ORDER = [
    {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "A-1001"}]},
    {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-1001"}]},
]
Factory = Callable[..., Settings]


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


class Sink:
    """Stands in for the daemon's webhook handler: gets the raw bytes and the signature header."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, raw_body: bytes, signature_header: str) -> None:
        assert signature_header == sign(raw_body, self.secret)
        self.bodies.append(json.loads(raw_body))

    def statuses(self) -> list[dict[str, Any]]:
        return [
            s
            for b in self.bodies
            for e in b["entry"]
            for c in e["changes"]
            if c["field"] == "messages"
            for s in c["value"]["statuses"]
        ]

    def template_events(self) -> list[dict[str, Any]]:
        return [
            c["value"]
            for b in self.bodies
            for e in b["entry"]
            for c in e["changes"]
            if c["field"] == "message_template_status_update"
        ]


def fast(provider: WhatsAppProvider) -> SandboxProvider:
    """The sandbox with quick webhooks, so tests wait milliseconds, not seconds."""
    assert isinstance(provider, SandboxProvider)
    provider.fake.configure(webhook_delay_ms=5.0, webhook_jitter_ms=0.0, webhook_duplicate_rate=0.0)
    provider.fake.configure(webhook_reorder_rate=0.0, webhook_read_rate=1.0)
    return provider


@pytest.fixture
def settings(make_settings: Factory, tmp_path: Path) -> Settings:
    """The sandbox's template file in the test's own directory, on SQLite and PostgreSQL runs alike."""
    return make_settings(WHATSAPP_SANDBOX_DIR=str(tmp_path))


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[tuple[SandboxProvider, Sink]]:
    secret = webhook_app_secret(settings)
    assert secret is not None
    sink = Sink(secret)
    provider = fast(
        build_provider(settings, webhook_sink=sink, latency_ms=5.0, jitter_ms=0.0, failure_rate=0.0)
    )
    await provider.start()
    try:
        yield provider, sink
    finally:
        await provider.close()


async def test_sandbox_sends_and_feeds_statuses_back(sandbox: tuple[SandboxProvider, Sink]) -> None:
    provider, sink = sandbox
    assert isinstance(provider, WhatsAppProvider)
    assert provider.is_sandbox and provider.name == "sandbox" and "SANDBOX" in provider.describe()
    result = await provider.send_template(
        to="+6281234567890",
        template="order_update",
        language="en_US",
        components=ORDER,
        callback_data="blast=1;rcpt=2;try=1",
    )
    assert isinstance(result, SendAccepted)
    assert result.wamid.startswith("wamid.SANDBOX.")  # a simulated message says so
    await wait_until(lambda: len(sink.statuses()) == 3)
    assert [s["status"] for s in sink.statuses()] == ["sent", "delivered", "read"]
    assert all(
        s["id"] == result.wamid and s["biz_opaque_callback_data"] == "blast=1;rcpt=2;try=1"
        for s in sink.statuses()
    )


async def test_sandbox_start_is_announced(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    provider = build_provider(settings)
    await provider.start()
    try:
        assert SANDBOX_BANNER in caplog.text
        info = await provider.phone_number_info()
        assert info.verified_name is not None and "SANDBOX" in info.verified_name
    finally:
        await provider.close()


async def test_sandbox_failures_come_by_webhook(settings: Settings) -> None:
    sink = Sink(SANDBOX_APP_SECRET)
    provider = fast(
        build_provider(settings, webhook_sink=sink, latency_ms=1.0, jitter_ms=0.0, failure_rate=1.0)
    )
    await provider.start()
    try:
        results = [
            await provider.send_template(
                to=f"+62812345678{i:02d}", template="order_update", language="en_US", components=ORDER
            )
            for i in range(6)
        ]
        assert all(isinstance(r, SendAccepted) for r in results)
        await wait_until(lambda: len(sink.statuses()) == 6)
    finally:
        await provider.close()
    for status in sink.statuses():
        assert status["status"] == "failed"
        error = classify_status_errors(status["errors"])
        assert error.code in (131026, 131049) and error.error_class is ErrorClass.RECIPIENT_PERMANENT


async def test_sandbox_has_realistic_latency(settings: Settings) -> None:
    provider = fast(build_provider(settings))  # 80 ± 40 ms by default
    await provider.start()
    try:
        started = time.monotonic()
        result = await provider.send_template(
            to="+6281234567890", template="order_update", language="en_US", components=ORDER
        )
        assert isinstance(result, SendAccepted)
        assert time.monotonic() - started >= 0.035
    finally:
        await provider.close()


async def test_sandbox_checks_templates_like_meta(sandbox: tuple[SandboxProvider, Sink]) -> None:
    provider, _ = sandbox
    result = await provider.send_template(to="+6281234567890", template="order_update", language="en")
    assert not result.ok


async def test_submitted_templates_are_approved_after_a_delay(settings: Settings) -> None:
    sink = Sink(SANDBOX_APP_SECRET)
    provider = fast(build_provider(settings, webhook_sink=sink, review_delay_s=0.2, latency_ms=1.0))
    await provider.start()
    try:
        components = [{"type": "BODY", "text": "Hi {{1}}", "example": {"body_text": [["Ada"]]}}]
        submitted = await provider.submit_template(
            name="fresh_news", language="en", category="MARKETING", components=components
        )
        assert submitted.status == "PENDING"
        await wait_until(lambda: any(e["event"] == "APPROVED" for e in sink.template_events()))
        listed = {t.name: t for t in await provider.list_templates()}
        assert listed["fresh_news"].status == "APPROVED" and listed["fresh_news"].id == submitted.id
        assert {"hello_world", "order_update", "spring_sale"} <= set(listed)
    finally:
        await provider.close()


async def test_console_and_daemon_sandboxes_share_templates(settings: Settings) -> None:
    console = build_provider(settings, review_delay_s=60.0)
    daemon = build_provider(settings)
    await console.start()
    await daemon.start()
    try:
        await console.submit_template(
            name="shared_promo",
            language="en",
            category="MARKETING",
            components=[{"type": "BODY", "text": "x"}],
        )
        listed = {t.name: t.status for t in await daemon.list_templates()}
        assert listed["shared_promo"] == "PENDING"
    finally:
        await console.close()
        await daemon.close()


async def test_sandbox_posts_webhooks_to_a_url(settings: Settings) -> None:
    received: list[tuple[bytes, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["X-Hub-Signature-256"]))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    # No simulated failures: one message in 50 would otherwise end at "failed" after two webhooks, not three.
    provider = fast(build_provider(settings, latency_ms=1.0, failure_rate=0.0))
    assert isinstance(provider, SandboxProvider)
    provider.set_webhook_target(url=str(server.make_url("/webhook")))  # once the daemon knows its port
    await provider.start()
    try:
        await provider.send_template(to="+6281234567890", template="hello_world", language="en_US")
        await wait_until(lambda: len(received) == 3)
    finally:
        await provider.close()
        await server.close()
    assert all(sig == sign(body, provider.webhook_app_secret) for body, sig in received)


async def test_sandbox_signs_with_the_configured_app_secret(make_settings: Factory, tmp_path: Path) -> None:
    settings = make_settings(WHATSAPP_APP_SECRET="my-app-secret", WHATSAPP_SANDBOX_DIR=str(tmp_path))
    assert webhook_app_secret(settings) == "my-app-secret"
    provider = build_provider(settings)
    assert isinstance(provider, SandboxProvider) and provider.webhook_app_secret == "my-app-secret"


# --- factory and credentials ---
def test_cloud_without_credentials_is_refused(make_settings: Factory) -> None:
    settings = make_settings(WHATSAPP_PROVIDER="cloud")
    with pytest.raises(ConfigError) as caught:
        require_cloud_credentials(settings)
    message = str(caught.value)
    assert "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID are not set" in message
    assert "WHATSAPP_PROVIDER=sandbox" in message
    with pytest.raises(ConfigError, match="WHATSAPP_PROVIDER=sandbox"):
        build_provider(settings)
    half = make_settings(WHATSAPP_PROVIDER="cloud", WHATSAPP_ACCESS_TOKEN="EAAG-secret")
    with pytest.raises(ConfigError, match="WHATSAPP_PHONE_NUMBER_ID is not set") as caught:
        require_cloud_credentials(half)
    assert "EAAG-secret" not in str(caught.value)


def test_sandbox_needs_no_credentials(settings: Settings) -> None:
    require_cloud_credentials(settings)
    assert isinstance(build_provider(settings), SandboxProvider)
    assert webhook_app_secret(settings) == SANDBOX_APP_SECRET


def test_sandbox_keeps_templates_beside_the_sqlite_database(make_settings: Factory) -> None:
    from shared.whatsapp.sandbox import sandbox_dir

    settings = make_settings(DATABASE_URL="sqlite:///var/lib/blast/blast.db")
    assert str(sandbox_dir(settings)) == "/var/lib/blast"
    assert str(sandbox_dir(make_settings(WHATSAPP_SANDBOX_DIR="/srv/sb"))) == "/srv/sb"


async def test_cloud_provider_from_settings(make_settings: Factory) -> None:
    settings = make_settings(
        WHATSAPP_PROVIDER="cloud",
        WHATSAPP_ACCESS_TOKEN="EAAG-very-secret",
        WHATSAPP_PHONE_NUMBER_ID="123456",
        WHATSAPP_BUSINESS_ACCOUNT_ID="654321",
        WHATSAPP_USE_MARKETING_ENDPOINT=True,
        WHATSAPP_TIMEOUT_S=3.5,
    )
    require_cloud_credentials(settings)
    provider = build_provider(settings)
    assert isinstance(provider, CloudClient)
    assert (provider.phone_number_id, provider.business_account_id) == ("123456", "654321")
    assert provider.use_marketing_endpoint and provider.timeout_s == 3.5
    assert not provider.is_sandbox and "EAAG-very-secret" not in repr(provider)
    assert webhook_app_secret(settings) is None
    await provider.close()
