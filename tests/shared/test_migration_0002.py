"""Migration 0002_webhooks: a database at 0001 holding data is upgraded to head with its data intact."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import Blast, OrphanStatus, Recipient, Suppression, WebhookEvent
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.shared.old_schema import old_blast, old_recipient, old_template


async def test_database_at_0001_with_data_is_upgraded_intact(empty_database_url: str) -> None:
    config = tortoise_config(empty_database_url)
    await Tortoise.init(config=config)
    try:
        executor = MigrationExecutor(connections.get("default"), config["apps"])
        await executor.migrate([MigrationTarget(APP, "0001_initial")])
        applied, missing, _ = await schema_state()
        assert applied == ["0001_initial"] and "0002_webhooks" in missing
        template_id = await old_template("promo", "id", TemplateStatus.APPROVED)
        blast_id = await old_blast(template_id, BlastStatus.COMPLETED.value, total=1, n_read=1)
        await old_recipient(blast_id, "+6281234567890", RecipientStatus.READ, wamid="wamid.1")
        await Suppression.create(phone="+6281234567899", reason="asked", source="operator")
    finally:
        await close_db()

    settings = load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox")
    await open_db(settings)
    try:
        applied, missing, unknown = await schema_state()
        assert "0002_webhooks" in applied and missing == [] and unknown == []
        blast = await Blast.get(name="old").prefetch_related("template")
        assert (blast.status, blast.total, blast.n_read, blast.template.name) == (
            BlastStatus.COMPLETED,
            1,
            1,
            "promo",
        )
        row = await Recipient.get(blast_id=blast.id)
        assert (row.phone, row.status, row.wamid) == ("+6281234567890", RecipientStatus.READ, "wamid.1")
        assert (await Suppression.get(phone="+6281234567899")).reason == "asked"
        # the new tables work
        now = datetime.now(UTC)
        event = await WebhookEvent.create(body="{}", received_at=now)
        assert await WebhookEvent.filter(processed_at__isnull=True).count() == 1
        await OrphanStatus.create(
            wamid="wamid.x", status="read", at=now, received_at=now, next_try_at=now, expires_at=now
        )
        assert event.id >= 1 and await OrphanStatus.all().count() == 1
    finally:
        await close_db()
