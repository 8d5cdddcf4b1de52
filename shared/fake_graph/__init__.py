"""Provides a faithful local fake of Meta's WhatsApp Cloud (Graph) API for tests, the demo and the sandbox."""

from __future__ import annotations

from shared.fake_graph.app import create_app, graph_error
from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeConfig, FakeState, FakeTemplate, FaultRule, ReceivedMessage
from shared.fake_graph.webhooks import SIGNATURE_HEADER, WebhookSink, sign

__all__ = [
    "SIGNATURE_HEADER",
    "FakeConfig",
    "FakeGraph",
    "FakeState",
    "FakeTemplate",
    "FaultRule",
    "ReceivedMessage",
    "WebhookSink",
    "create_app",
    "graph_error",
    "sign",
]
