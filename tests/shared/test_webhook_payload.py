"""The payload parser reads repeated pricing objects and timestamps once: the cached answers are the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared.parsing.webhook_payload import parse_body, parse_pricing
from shared.services.delivery import Pricing

WORDS: frozenset[str] = frozenset({"stop"})


def _status_body(wamid: str, ts: str, pricing: dict[str, object]) -> str:
    status: dict[str, Any] = {
        "id": wamid,
        "status": "delivered",
        "timestamp": ts,
        "recipient_id": "62812345678",
    }
    status["pricing"] = pricing
    change = {"field": "messages", "value": {"statuses": [status]}}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]})


def test_a_boolean_billable_flag_and_the_number_1_are_not_confused() -> None:
    for _ in range(2):  # the second round answers from what the first one read
        assert parse_pricing({"billable": True}) == Pricing(None, None, None, True)
        assert parse_pricing({"billable": 1}) is None
        assert parse_pricing({"billable": False}) == Pricing(None, None, None, False)
        assert parse_pricing({"billable": 0}) is None


def test_repeated_pricing_and_timestamps_read_the_same() -> None:
    pricing = {"billable": True, "pricing_model": "pmp", "category": " Marketing ", "type": "regular"}
    first = parse_body(_status_body("wamid.1", "1750000000", pricing), keywords=WORDS, payloads=WORDS)
    again = parse_body(_status_body("wamid.2", "1750000000", dict(pricing)), keywords=WORDS, payloads=WORDS)
    for parsed in (first, again):
        (item,) = parsed.statuses
        assert item.update.at == datetime.fromtimestamp(1750000000, UTC)
        assert item.update.pricing == Pricing("marketing", "regular", "PMP", True)
    other = parse_body(
        _status_body("wamid.3", "1750000001", {"category": "utility", "type": "free_customer_service"}),
        keywords=WORDS,
        payloads=WORDS,
    )
    assert other.statuses[0].update.at == datetime.fromtimestamp(1750000001, UTC)
    assert other.statuses[0].update.pricing == Pricing("utility", "free_customer_service", None, False)
