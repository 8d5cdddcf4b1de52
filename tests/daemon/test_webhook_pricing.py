"""Status webhooks with `pricing`: stored per recipient through the applier's set-based write, counted once per
billable delivery (blast_billable_messages_total{category,market}), and priced as the blast's actual cost."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared import metrics
from shared.clock import utcnow
from shared.models import OrphanStatus
from shared.services import cost_estimate, rate_card_import, webhooks
from shared.services.transitions import SendOutcome, record_send_outcomes
from shared.status import RecipientStatus
from tests.daemon.webhook_helpers import WebhookEnv, apply_all, make_blast, recipient, status_payload, wenv

__all__ = ["wenv"]
R = RecipientStatus
DATA = Path(__file__).parent.parent / "data" / "pricing"

MARKETING = {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}
UTILITY = {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
FREE = {"billable": False, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"}


def billed(category: str, market: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "blast_billable_messages_total", {"category": category, "market": market}
    )
    return value or 0.0


async def import_sample() -> None:
    await rate_card_import.import_card(
        rates=DATA / "sample-rates-idr.csv",
        markets=DATA / "sample-markets.csv",
        tiers=DATA / "sample-tiers-idr.csv",
        currency="IDR",
        effective="2000-01-01",
        actor="tester",
    )


def test_pricing_object_is_parsed() -> None:
    p = webhooks.parse_pricing(MARKETING)
    assert p is not None and (p.category, p.type, p.model, p.billable) == (
        "marketing",
        "regular",
        "PMP",
        True,
    )
    free = webhooks.parse_pricing(FREE)
    assert free is not None and free.billable is False
    # without a type, Meta's deprecated flag decides
    legacy = webhooks.parse_pricing({"billable": True, "pricing_model": "CBP", "category": "utility"})
    assert legacy is not None and legacy.billable is True
    assert webhooks.parse_pricing({}) is None and webhooks.parse_pricing("x") is None


async def test_pricing_is_stored_counted_once_and_priced_as_actuals(wenv: WebhookEnv) -> None:
    await import_sample()
    blast, rows = await make_blast(
        [
            ("+6281234567890", R.SENT, "w.id1"),
            ("+6281234567891", R.SENT, "w.id2"),
            ("+18095550100", R.SENT, "w.do"),
            ("+12025550100", R.SENT, "w.us"),
            ("+6281234567892", R.SENT, "w.free"),
            ("+6281234567893", R.SENT, "w.undelivered"),
        ]
    )
    before = {k: billed(*k) for k in (("marketing", "Indonesia"), ("utility", "Rest of Latin America"))}
    payloads: list[dict[str, Any]] = [
        status_payload("w.id1", "sent", pricing=MARKETING),
        status_payload("w.id1", "delivered", ts=1750263780, pricing=MARKETING),
        status_payload("w.id1", "delivered", ts=1750263780, pricing=MARKETING),  # duplicate
        status_payload("w.id1", "read", ts=1750263790, pricing=MARKETING),
        # read first, then the delivered that carries the pricing (overtaken: the pricing is still kept)
        status_payload("w.id2", "read", ts=1750263790),
        status_payload("w.id2", "delivered", ts=1750263780, pricing=MARKETING),
        # Meta applied another category than the template's
        status_payload("w.do", "delivered", ts=1750263780, pricing=UTILITY),
        status_payload("w.us", "delivered", ts=1750263780, pricing=MARKETING),
        status_payload("w.free", "delivered", ts=1750263780, pricing=FREE),
        status_payload("w.undelivered", "sent", pricing=MARKETING),
    ]
    for payload in payloads[:5]:
        await wenv.post_ok(payload)
    await apply_all(wenv.settings)
    for payload in payloads[5:]:
        await wenv.post_ok(payload)
    await apply_all(wenv.settings)

    first = await recipient(rows[0].id)
    assert (
        first.status,
        first.pricing_category,
        first.pricing_type,
        first.pricing_model,
        first.billable,
    ) == (
        R.READ,
        "marketing",
        "regular",
        "PMP",
        True,
    )
    second = await recipient(rows[1].id)
    assert (second.status, second.pricing_category, second.billable) == (R.READ, "marketing", True)
    assert (await recipient(rows[4].id)).billable is False
    assert (await recipient(rows[5].id)).pricing_category == "marketing"  # sent: known, not billed yet

    assert billed("marketing", "Indonesia") - before[("marketing", "Indonesia")] == 2
    assert billed("utility", "Rest of Latin America") - before[("utility", "Rest of Latin America")] == 1

    actual = await cost_estimate.actual_cost(blast.id)
    lines = {(line.market, line.category): line for line in actual.lines}
    assert lines[("Indonesia", "marketing")].messages == 2
    assert lines[("Indonesia", "marketing")].amount == Decimal("1172.66")
    assert lines[("Rest of Latin America", "utility")].amount == Decimal("180.00")  # base rate of the card
    assert lines[("North America", "marketing")].amount == Decimal("401.00")
    assert actual.messages == 4 and actual.total == Decimal("1753.66") and actual.currency == "IDR"


async def test_pricing_of_a_status_parked_as_an_orphan_is_kept(wenv: WebhookEnv) -> None:
    blast, (r,) = await make_blast([("+6281234567890", R.SENDING, None)])
    await wenv.post_ok(status_payload("w.late", "delivered", pricing=UTILITY))  # nothing to match yet
    assert (await apply_all(wenv.settings)).orphaned == 1
    assert (await OrphanStatus.get(wamid="w.late")).pricing_category == "utility"
    await record_send_outcomes([SendOutcome(recipient_id=r.id, blast_id=blast.id, to=R.SENT, wamid="w.late")])
    await OrphanStatus.all().update(next_try_at=utcnow() - timedelta(seconds=1))
    assert (await webhooks.retry_orphans(wenv.settings)).reconciled == 1
    row = await recipient(r.id)
    assert (row.status, row.pricing_category, row.pricing_type, row.billable) == (
        R.DELIVERED,
        "utility",
        "regular",
        True,
    )
    actual = await cost_estimate.actual_cost(blast.id)
    assert actual.card_id is None and actual.messages == 1 and actual.note == cost_estimate.NO_CARD
