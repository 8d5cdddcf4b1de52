"""Provides FakeGraph: the fake Graph API on a loopback port, with a Python handle for tests and sandbox."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from shared.fake_graph.app import CLOSING, apply_due_reviews, create_app, set_template_status
from shared.fake_graph.state import (
    FakeConfig,
    FakeState,
    FakeTemplate,
    FaultRule,
    ReceivedMessage,
    TemplateStore,
)
from shared.fake_graph.webhooks import WebhookEmitter, WebhookSink

log = logging.getLogger(__name__)


class FakeGraph:
    """The fake Graph API server.

    Use as `async with FakeGraph(templates=[...]) as fake:` then point a client at `fake.url` (which already
    holds the version, like WHATSAPP_API_URL) with `fake.config.access_token`.

    Args:
        config: the knobs (a default FakeConfig when omitted).
        templates: templates to seed the store with (FakeTemplate or Meta-shaped dicts).
        host: the address to listen on.
        port: the port (0: a free one).
        version: the version segment of `url` (every `v\\d+.\\d+` is accepted anyway).
        sink: deliver webhooks to this callable instead of posting them to `config.webhook_url`.
        templates_path: keep the template store in this JSON file (shared by several processes).
        seed: seed of the fake's random choices, for repeatable runs.
    """

    def __init__(
        self,
        config: FakeConfig | None = None,
        *,
        templates: Iterable[FakeTemplate | Mapping[str, Any]] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "v24.0",
        sink: WebhookSink | None = None,
        templates_path: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config or FakeConfig()
        self.state = FakeState(self.config, TemplateStore(templates_path), rng=random.Random(seed))
        for tpl in templates:
            self.add_template(tpl)
        self.host = host
        self.port = port
        self.version = version
        self.emitter = WebhookEmitter(self.state, sink=sink)
        self.app = create_app(self.state, self.emitter)
        self._runner: web.AppRunner | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """`http://host:port`, for the /_fake control endpoints."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The Graph API base URL with its version, as WHATSAPP_API_URL takes it."""
        return f"{self.base_url}/{self.version}"

    async def start(self) -> None:
        """Listen on the port (a free one when 0) and start the webhook emitter."""
        if self._runner is not None:
            return
        await self.emitter.start()
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        self._runner = runner
        log.info("fake Graph API listening on %s", self.url)

    async def stop(self) -> None:
        """Stop answering, release held requests, stop the webhooks."""
        self.app[CLOSING].set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emitter.close()

    async def __aenter__(self) -> FakeGraph:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (the command line's main loop).

        The record of received messages only grows: every second what the collector tracks so far is frozen
        (gc.freeze), so that full collections stay short. A long one would stall the loop, and the requests
        arriving meanwhile would be stamped late and together, as if they had arrived in a burst.
        """
        await self.start()
        try:
            while True:
                await asyncio.sleep(1.0)
                gc.freeze()
        finally:
            await self.stop()

    # --- control -------------------------------------------------------------------------------------------
    def add_template(self, template: FakeTemplate | Mapping[str, Any]) -> FakeTemplate:
        """Seed or replace one template (by name and language)."""
        tpl = template if isinstance(template, FakeTemplate) else FakeTemplate.from_json(template)
        return self.state.templates.put(tpl)

    def templates(self) -> list[FakeTemplate]:
        return self.state.templates.all()

    def set_template_status(
        self, name: str, status: str, *, language: str | None = None, reason: str | None = None
    ) -> None:
        """Move a template to `status` and send the `message_template_status_update` webhook."""
        found = [t for t in self.state.templates.all() if t.name == name and language in (None, t.language)]
        if not found:
            raise KeyError(f"no template {name!r}")
        for tpl in found:
            set_template_status(self.app, tpl, status.upper(), reason)

    def finish_reviews(self) -> list[FakeTemplate]:
        """Finish every pending template review now (APPROVED or REJECTED as configured)."""
        return apply_due_reviews(self.app, force=True)

    def add_fault(self, rule: FaultRule | None = None, **fields: Any) -> FaultRule:
        """Inject a failure: `add_fault(mode="error", code=131026, to="628123…")`."""
        return self.state.add_fault(rule if rule is not None else FaultRule.from_json(fields))

    def number_update(self, phone_number_id: str, event: str = "THROUGHPUT_UPGRADE") -> dict[str, Any]:
        """Emit a `phone_number_quality_update` webhook (see FakeWebhooks.number_update); returns its value."""
        return self.emitter.number_update(phone_number_id, event)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def configure(self, **changes: Any) -> None:
        """Change knobs at run time: `configure(latency_ms=50, jitter_ms=20)`."""
        self.config.update(changes)

    @property
    def received(self) -> list[ReceivedMessage]:
        """Every send request received (whatever its outcome), oldest first."""
        return list(self.state.received)

    def accepted(self) -> list[ReceivedMessage]:
        """The send requests that were accepted (including held and dropped answers: those went out too)."""
        return [m for m in self.state.received if m.wamid is not None]

    @property
    def counts(self) -> dict[str, int]:
        """Counters: messages_requests, list_requests, accepted, error_<code>, webhooks_posted, …"""
        return dict(self.state.counts)

    async def drain_webhooks(self, timeout_s: float = 10.0) -> None:
        """Wait until every scheduled webhook was delivered (or given up)."""
        await self.emitter.drain(timeout_s)
