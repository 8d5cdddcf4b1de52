"""Migration 0005_api: a database at 0004 holding blasts is upgraded to head with its data intact and the API's
token and idempotency tables working (unique names, hashes and keys)."""

from __future__ import annotations

import pytest
from tortoise import Tortoise, connections
from tortoise.exceptions import IntegrityError
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import ApiIdempotency, ApiToken, Blast
from shared.services import tokens
from shared.services.transitions import utcnow
from shared.status import BlastStatus, TemplateStatus
from tests.shared.old_schema import old_blast, old_template


async def test_database_at_0004_with_blasts_is_upgraded_intact(empty_database_url: str) -> None:
    config = tortoise_config(empty_database_url)
    await Tortoise.init(config=config)
    try:
        executor = MigrationExecutor(connections.get("default"), config["apps"])
        await executor.migrate([MigrationTarget(APP, "0004_webhook_pending_index")])
        applied, missing, _ = await schema_state()
        assert applied[-1] == "0004_webhook_pending_index" and "0005_api" in missing
        template_id = await old_template("promo", "id", TemplateStatus.APPROVED)
        await old_blast(template_id, BlastStatus.SCHEDULED.value, client_key="k-1")
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        applied, missing, unknown = await schema_state()
        assert "0005_api" in applied and missing == [] and unknown == []
        blast = await Blast.get(name="old")
        assert (blast.status, blast.client_key) == (BlastStatus.SCHEDULED, "k-1")
        created = await tokens.create_token(name="crm", role="operator", actor="test")
        row = await ApiToken.get(name="crm")
        assert row.token_hash == tokens.hash_token(created.token) and created.token not in row.token_hash
        with pytest.raises(IntegrityError):
            await ApiToken.create(
                name="crm",
                role="viewer",
                token_hash="0" * 64,
                prefix="x",
                created_at=utcnow(),
                created_by="t",
            )
        now = utcnow()
        await ApiIdempotency.create(
            key="k", request="POST /x", status=201, body="{}", token_name="crm", created_at=now
        )
        with pytest.raises(IntegrityError):
            await ApiIdempotency.create(
                key="k", request="POST /y", status=201, body="{}", token_name="crm", created_at=now
            )
    finally:
        await close_db()
