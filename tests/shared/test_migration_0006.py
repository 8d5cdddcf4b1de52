"""Migration 0006_pricing: a database at 0005 holding a template, a blast and a recipient is upgraded to head with
its data intact, the pricing and category-change columns empty, and the price_card table usable."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import OrphanStatus, PriceCard, Recipient, Template
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.shared.old_schema import old_blast, old_recipient, old_template

AT = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


async def test_database_at_0005_is_upgraded_intact(empty_database_url: str) -> None:
    config = tortoise_config(empty_database_url)
    await Tortoise.init(config=config)
    try:
        executor = MigrationExecutor(connections.get("default"), config["apps"])
        await executor.migrate([MigrationTarget(APP, "0005_api")])
        applied, missing, _ = await schema_state()
        assert applied[-1] == "0005_api" and "0006_pricing" in missing
        template_id = await old_template("promo", "id", TemplateStatus.APPROVED)
        blast_id = await old_blast(template_id, BlastStatus.COMPLETED.value, total=1)
        await old_recipient(
            blast_id, "+6281234567890", RecipientStatus.DELIVERED, attempts=1, wamid="w.1", delivered_at=AT
        )
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        applied, missing, unknown = await schema_state()
        assert "0006_pricing" in applied and missing == [] and unknown == []
        row = await Recipient.get(wamid="w.1")
        assert (row.phone, RecipientStatus(row.status), row.delivered_at) == (
            "+6281234567890",
            RecipientStatus.DELIVERED,
            AT,
        )
        assert (row.pricing_category, row.pricing_type, row.pricing_model, row.billable) == (None,) * 4
        await Recipient.filter(id=row.id).update(pricing_category="marketing", billable=True)
        assert (await Recipient.get(id=row.id)).billable is True
        promo = await Template.get(name="promo")
        assert (promo.category, promo.previous_category, promo.category_changed_at) == ("UTILITY", None, None)
        orphan = await OrphanStatus.create(
            wamid="w.2",
            status="delivered",
            at=AT,
            received_at=AT,
            next_try_at=AT,
            expires_at=AT,
            pricing_category="utility",
            pricing_type="regular",
            pricing_model="PMP",
            billable=True,
        )
        assert (await OrphanStatus.get(id=orphan.id)).pricing_type == "regular"
        card = await PriceCard.create(
            currency="IDR",
            minor_unit=2,
            effective_on=date(2030, 1, 1),
            rates={"A": {"marketing": "1.5"}},
            markets={"62": "A"},
            tiers=[],
            imported_at=AT,
            imported_by="t",
        )
        assert (await PriceCard.get(id=card.id)).rates == {"A": {"marketing": "1.5"}}
    finally:
        await close_db()
