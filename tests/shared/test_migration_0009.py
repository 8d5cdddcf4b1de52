"""Migration 0009_accepted_due: a database at 0008 is upgraded with its blasts intact; a local-time blast running at
the upgrade has the due groups already come accepted (the release that ran them had no per-group cutoff), so the new
release does not pause it for them; other blasts accept nothing."""

from __future__ import annotations

import json
from datetime import timedelta

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from shared.clock import utcnow
from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import Blast
from shared.services import blast_lifecycle
from shared.status import BlastStatus, TemplateStatus
from tests.shared.old_schema import old_blast, old_template


async def test_database_at_0008_is_upgraded_and_running_groups_stay_accepted(empty_database_url: str) -> None:
    config = tortoise_config(empty_database_url)
    await Tortoise.init(config=config)
    late = utcnow() - timedelta(days=2)  # due long before the upgrade: later than the default cutoff (1 day)
    try:
        executor = MigrationExecutor(connections.get("default"), config["apps"])
        await executor.migrate([MigrationTarget(APP, "0008_senders")])
        applied, missing, _ = await schema_state()
        assert applied[-1] == "0008_senders" and missing == ["0009_accepted_due"]
        template_id = await old_template("promo", "id", TemplateStatus.APPROVED)
        due = json.dumps([late.isoformat()])
        running = await old_blast(template_id, "running", BlastStatus.PROCESSING, due_times=due)
        scheduled = await old_blast(template_id, "plain", BlastStatus.SCHEDULED)
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        applied, missing, unknown = await schema_state()
        assert "0009_accepted_due" in applied and missing == [] and unknown == []
        blast = await Blast.get(id=running)
        assert blast.status == BlastStatus.PROCESSING and blast.accepted_due_at is not None
        assert blast.accepted_due_at >= late
        check = await blast_lifecycle.check_due_groups(running, missed_cutoff_s=86400.0, actor="d")
        assert (check.paused, check.sendable) == (False, True)
        assert (await Blast.get(id=scheduled)).accepted_due_at is None
    finally:
        await close_db()
