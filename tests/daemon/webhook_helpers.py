"""Helpers of the webhook tests: a running HTTP app on the test's database and Redis, Meta-shaped payloads,
signed posts, and blasts built directly in the database (setup only)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, web
from tortoise import connections

from daemon.http.app import bound_port, create_app, serve
from daemon.http.health import Readiness
from shared.config import Settings
from shared.db import close_db, open_db
from shared.models import Blast, Recipient, Template
from shared.services import webhooks
from shared.services.webhooks import ApplyReport, sign
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.conftest import USE_POSTGRES

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"


#: The front ends of POST /webhook every HTTP-level webhook test runs against (BLAST_WEBHOOK_INTAKE).
INTAKES = ["lean", "aiohttp"]


class LiveClient:
    """Requests to the daemon's HTTP app served on a real port, as `serve` runs it (lean intake or aiohttp)."""

    def __init__(self, app: web.Application, runner: web.AppRunner, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.runner = runner
        self.session = session
        self.port = bound_port(runner)

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.session.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.session.post(path, **kwargs)

    async def close(self) -> None:
        """Close the session and stop the server (once)."""
        await self.session.close()
        if self.runner.server is not None:
            await self.runner.cleanup()


async def start_client(app: web.Application) -> LiveClient:
    runner = await serve(app, "127.0.0.1", 0)
    return LiveClient(app, runner, aiohttp.ClientSession(base_url=f"http://127.0.0.1:{bound_port(runner)}"))


@dataclass
class WebhookEnv:
    settings: Settings
    client: LiveClient
    readiness: Readiness

    async def post(self, payload: Any, *, signed: bool = True, raw: bytes | None = None) -> ClientResponse:
        body = raw if raw is not None else json.dumps(payload, ensure_ascii=True).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Hub-Signature-256"] = sign(APP_SECRET, body)
        return await self.client.post("/webhook", data=body, headers=headers)

    async def post_ok(self, payload: Any) -> None:
        resp = await self.post(payload)
        assert resp.status == 200, await resp.text()


async def truncate_webhook_tables() -> None:
    if USE_POSTGRES:
        await connections.get("default").execute_script(
            "TRUNCATE webhook_event, orphan_status, audit_log, recipient, blast, template, suppression, price_card, sender "
            "RESTART IDENTITY CASCADE"
        )


@pytest.fixture(params=INTAKES)
async def wenv(request: Any, make_settings: Any, redis_client: Any) -> AsyncIterator[WebhookEnv]:
    """The HTTP app on a fresh database, with a known app secret and verify token, fully ready; served on a real
    port with each POST /webhook front end in turn."""
    settings = make_settings(
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        BLAST_FAILURE_RATE_WINDOW=10,
        BLAST_WEBHOOK_MAX_BODY=64 * 1024,
        BLAST_WEBHOOK_INTAKE=request.param,
    )
    await open_db(settings)
    await truncate_webhook_tables()
    readiness = Readiness(schema_migrated=True, recovery_done=True, receiver_running=True)
    client = await start_client(create_app(settings, readiness=readiness))
    try:
        yield WebhookEnv(settings, client, readiness)
    finally:
        await client.close()
        await close_db()


async def apply_all(settings: Settings) -> ApplyReport:
    """Apply every stored event (and due orphans) now, as the applier would."""
    total = ApplyReport()
    while True:
        report = await webhooks.apply_pending(settings)
        total.events += report.events
        total.applied += report.applied
        total.ignored += report.ignored
        total.orphaned += report.orphaned
        total.opt_outs += report.opt_outs
        total.paused_blasts.extend(report.paused_blasts)
        if report.events == 0:
            return total


async def make_blast(
    statuses: Sequence[tuple[str, RecipientStatus, str | None]],
    *,
    blast_status: BlastStatus = BlastStatus.PROCESSING,
    template_name: str = "promo",
) -> tuple[Blast, list[Recipient]]:
    """A blast of an APPROVED template whose recipients are (phone, status, wamid), counters consistent."""
    template, _ = await Template.get_or_create(
        name=template_name, language="id", defaults={"status": TemplateStatus.APPROVED, "meta_id": "9001"}
    )
    counts: dict[str, Any] = {f"n_{s.value.lower()}": 0 for s in RecipientStatus}
    for _, status, _ in statuses:
        counts[f"n_{status.value.lower()}"] += 1
    blast = await Blast.create(
        name="test", template=template, status=blast_status, total=len(statuses), **counts
    )
    rows = [
        await Recipient.create(blast=blast, phone=phone, status=status, wamid=wamid, attempts=1)
        for phone, status, wamid in statuses
    ]
    return blast, rows


def envelope(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "time": 1750263773, "changes": [{"field": field, "value": value}]}],
    }


def status_payload(
    wamid: str,
    status: str,
    *,
    ts: int = 1750263773,
    recipient: str = "6281234567890",
    callback: str | None = None,
    error_code: int | None = None,
    pricing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": recipient}
    if pricing is not None:
        item["pricing"] = pricing
    if callback is not None:
        item["biz_opaque_callback_data"] = callback
    if error_code is not None:
        item["errors"] = [
            {"code": error_code, "title": "failed", "message": "failed", "error_data": {"details": "x"}}
        ]
    return envelope(
        "messages",
        {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": [item],
        },
    )


def inbound_text(wa_id: str, text: str) -> dict[str, Any]:
    return envelope(
        "messages",
        {
            "messaging_product": "whatsapp",
            "contacts": [{"wa_id": wa_id, "profile": {"name": "x"}}],
            "messages": [
                {
                    "from": wa_id,
                    "id": "wamid.in1",
                    "timestamp": "1750263800",
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    )


def inbound_button(wa_id: str, payload: str) -> dict[str, Any]:
    return envelope(
        "messages",
        {
            "messaging_product": "whatsapp",
            "messages": [
                {
                    "from": wa_id,
                    "id": "wamid.in2",
                    "timestamp": "1750263800",
                    "type": "button",
                    "button": {"payload": payload, "text": "Stop promotions"},
                }
            ],
        },
    )


def preferences(wa_id: str, value: str) -> dict[str, Any]:
    return envelope(
        "user_preferences",
        {
            "messaging_product": "whatsapp",
            "contacts": [{"wa_id": wa_id}],
            "user_preferences": [
                {
                    "wa_id": wa_id,
                    "detail": "x",
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": 1,
                }
            ],
        },
    )


async def recipient(rid: int) -> Recipient:
    return await Recipient.get(id=rid)
