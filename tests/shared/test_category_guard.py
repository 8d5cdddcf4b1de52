"""Category guard: a template whose category Meta changed (sync, status or category webhook) shows the change in
the template list and in the estimate of every blast still to send with it, priced at the new category."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from shared.config import Settings
from shared.fake_graph.server import FakeGraph
from shared.models import Blast, Recipient, Template
from shared.services import cost_estimate, rate_card_import, templates, webhooks
from shared.services.template_sync import apply_category_event, sync_templates
from shared.status import BlastStatus
from shared.whatsapp.base import WhatsAppProvider
from tests.factories import make_blast, make_template
from tests.shared.test_template_sync import cloud, fake

__all__ = ["cloud", "fake"]
DATA = Path(__file__).parent.parent / "data" / "pricing"


async def _sample_card() -> None:
    await rate_card_import.import_card(
        rates=DATA / "sample-rates-idr.csv",
        markets=DATA / "sample-markets.csv",
        currency="IDR",
        effective="2000-01-01",
        actor="tester",
    )


async def test_category_webhook_shows_in_list_and_estimates_of_blasts_still_to_send(db: Settings) -> None:
    await _sample_card()
    template = await make_template(category="UTILITY")
    scheduled = await make_blast(template, n=2)
    done = await make_blast(template, n=0, status=BlastStatus.COMPLETED, name="done")
    await Recipient.create(blast_id=done.id, phone="+6281299999999", status="DELIVERED")
    assert (await cost_estimate.estimate_blast(scheduled.id)).category_change is None

    assert await apply_category_event(
        {
            "message_template_id": template.meta_id,
            "message_template_name": template.name,
            "message_template_language": template.language,
            "previous_category": "UTILITY",
            "new_category": "MARKETING",
        }
    )
    (summary,) = await templates.list_templates()
    assert (summary.category, summary.previous_category) == ("MARKETING", "UTILITY")
    assert summary.category_shown == "MARKETING (was UTILITY)"

    estimate = await cost_estimate.estimate_blast(scheduled.id)
    assert estimate.category == "marketing" and estimate.total == Decimal("586.33") * 2
    assert estimate.category_change is not None and estimate.category_change.startswith(
        "UTILITY -> MARKETING on "
    )
    assert any(
        "template category changed by Meta: UTILITY -> MARKETING" in x
        for x in cost_estimate.summary_lines(estimate)
    )
    assert (await cost_estimate.estimate_blast(done.id)).category_change is None  # nothing more to send

    # the same category again changes nothing; an unknown template or a bad value is ignored
    assert not await apply_category_event(
        {"message_template_id": template.meta_id, "new_category": "MARKETING"}
    )
    assert not await apply_category_event({"message_template_id": "nope", "new_category": "UTILITY"})
    assert not await apply_category_event({"message_template_id": template.meta_id, "new_category": 3})


async def test_category_webhook_is_parsed_and_applied_after_commit(db: Settings) -> None:
    template = await make_template(category="UTILITY")
    body = (
        '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"template_category_update",'
        f'"value":{{"message_template_id":"{template.meta_id}","message_template_name":"{template.name}",'
        f'"message_template_language":"{template.language}","previous_category":"UTILITY",'
        '"new_category":"MARKETING"}}]}]}'
    )
    parsed = webhooks.parse_body(body, keywords=frozenset(), payloads=frozenset())
    assert parsed.kinds["template_category"] == 1 and len(parsed.category_events) == 1
    await webhooks.store_event(body)
    await webhooks.apply_pending(db)
    row = await Template.get(id=template.id)
    assert (row.category, row.previous_category) == ("MARKETING", "UTILITY") and row.category_changed_at


async def test_sync_records_a_category_change(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    settings, provider = cloud
    await sync_templates(settings, provider)
    assert (await Template.get(name="order_update")).previous_category is None
    tpl = fake.state.templates.find("order_update", "en_US")
    assert tpl is not None
    tpl.category = "MARKETING"
    await sync_templates(settings, provider)
    row = await Template.get(name="order_update")
    assert (row.category, row.previous_category) == ("MARKETING", "UTILITY")
    assert await Blast.all().count() == 0
