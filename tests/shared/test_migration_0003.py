"""Migration 0003_recipient_sent_at: a database at 0002 holding recipients is upgraded to head with its data
intact and the (sent_at, phone) index in place."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import Recipient
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.conftest import USE_POSTGRES
from tests.shared.old_schema import old_blast, old_recipient, old_template

SENT_AT = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


async def _recipient_indexes() -> set[str]:
    conn = connections.get("default")
    if USE_POSTGRES:
        _, rows = await conn.execute_query("SELECT indexname FROM pg_indexes WHERE tablename = 'recipient'")
        return {str(dict(r)["indexname"]) for r in rows}
    _, rows = await conn.execute_query("PRAGMA index_list('recipient')")
    return {str(dict(r)["name"]) for r in rows}


async def test_database_at_0002_with_recipients_is_upgraded_intact(empty_database_url: str) -> None:
    config = tortoise_config(empty_database_url)
    await Tortoise.init(config=config)
    try:
        executor = MigrationExecutor(connections.get("default"), config["apps"])
        await executor.migrate([MigrationTarget(APP, "0002_webhooks")])
        applied, missing, _ = await schema_state()
        assert applied[-1] == "0002_webhooks" and "0003_recipient_sent_at" in missing
        assert "recipient_sent_at" not in await _recipient_indexes()
        template_id = await old_template("promo", "id", TemplateStatus.APPROVED)
        blast_id = await old_blast(template_id, BlastStatus.COMPLETED.value, total=2)
        await old_recipient(blast_id, "+6281234567890", RecipientStatus.SENT, sent_at=SENT_AT, wamid="w.1")
        await old_recipient(blast_id, "+6281234567891", RecipientStatus.PENDING)
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        applied, missing, unknown = await schema_state()
        assert "0003_recipient_sent_at" in applied and missing == [] and unknown == []
        assert "recipient_sent_at" in await _recipient_indexes()
        rows = await Recipient.all().order_by("phone").values_list("phone", "status", "sent_at", "wamid")
        assert [(p, RecipientStatus(s), t, w) for p, s, t, w in rows] == [
            ("+6281234567890", RecipientStatus.SENT, SENT_AT, "w.1"),
            ("+6281234567891", RecipientStatus.PENDING, None, None),
        ]
        assert await Recipient.filter(sent_at__gte=SENT_AT).count() == 1
    finally:
        await close_db()
