"""Migration 0007_local_time: a database at 0006 holding a blast and a recipient is upgraded to head with its
data intact, the local-time columns empty, and the partial index of due groups in place."""

from __future__ import annotations

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import Blast, Recipient
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.shared.old_schema import old_blast, old_recipient, old_template


async def test_database_at_0006_is_upgraded_intact(empty_database_url: str) -> None:
    config = tortoise_config(empty_database_url)
    await Tortoise.init(config=config)
    try:
        executor = MigrationExecutor(connections.get("default"), config["apps"])
        await executor.migrate([MigrationTarget(APP, "0006_pricing")])
        applied, missing, _ = await schema_state()
        assert applied[-1] == "0006_pricing" and "0007_local_time" in missing
        template_id = await old_template("promo", "id", TemplateStatus.APPROVED)
        blast_id = await old_blast(template_id, "old", BlastStatus.SCHEDULED, total=1, n_pending=1)
        await old_recipient(blast_id, "+6281234567890", RecipientStatus.PENDING)
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        applied, missing, unknown = await schema_state()
        assert "0007_local_time" in applied and missing == [] and unknown == []
        blast = await Blast.get(id=blast_id)
        assert (blast.status, blast.local_time, blast.timezone, blast.due_times) == (
            BlastStatus.SCHEDULED,
            None,
            None,
            None,
        )
        row = await Recipient.get(blast_id=blast_id)
        assert (row.phone, row.zone, row.due_at) == ("+6281234567890", None, None)
        conn = connections.get("default")
        if conn.capabilities.dialect == "postgres":
            rows = await conn.execute_query_dict(
                "SELECT indexname FROM pg_indexes WHERE indexname = 'recipient_due'"
            )
        else:
            rows = await conn.execute_query_dict(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'recipient_due'"
            )
        assert len(rows) == 1
    finally:
        await close_db()
