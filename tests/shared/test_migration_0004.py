"""Migration 0004_webhook_pending_index: a database at 0003 holding stored webhook events is upgraded to head
with its events intact, and the applier's claim of the oldest pending events reads them in id order through
the partial index instead of reading and sorting the whole backlog."""

from __future__ import annotations

import pytest
from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget
from tortoise.transactions import in_transaction

from shared.clock import utcnow
from shared.config import load_settings
from shared.db import APP, close_db, open_db, schema_state, tortoise_config
from shared.models import WebhookEvent
from shared.services import webhooks
from tests.conftest import USE_POSTGRES

CLAIM = "SELECT id, body FROM webhook_event WHERE processed_at IS NULL ORDER BY id LIMIT 300"


async def _webhook_indexes() -> set[str]:
    conn = connections.get("default")
    if USE_POSTGRES:
        _, rows = await conn.execute_query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'webhook_event'"
        )
        return {str(dict(r)["indexname"]) for r in rows}
    _, rows = await conn.execute_query("PRAGMA index_list('webhook_event')")
    return {str(dict(r)["name"]) for r in rows}


async def _claim_plan() -> str:
    """The plan of the applier's claim, as the applier runs it (the statistics are stale: no ANALYZE ran)."""
    if USE_POSTGRES:
        async with in_transaction() as tx:
            await tx.execute_script("SET LOCAL enable_sort = off")
            _, rows = await tx.execute_query("EXPLAIN " + webhooks.CLAIM_PG.replace("$1", "300"))
        return "\n".join(str(next(iter(dict(r).values()))) for r in rows)
    _, rows = await connections.get("default").execute_query(f"EXPLAIN QUERY PLAN {CLAIM}")
    return "\n".join(str(dict(r)["detail"]) for r in rows)


async def _at_0003(url: str) -> None:
    config = tortoise_config(url)
    await Tortoise.init(config=config)
    executor = MigrationExecutor(connections.get("default"), config["apps"])
    await executor.migrate([MigrationTarget(APP, "0003_recipient_sent_at")])


async def test_database_at_0003_with_events_is_upgraded_and_claims_in_index_order(
    empty_database_url: str,
) -> None:
    await _at_0003(empty_database_url)
    try:
        _, missing, _ = await schema_state()
        assert "0004_webhook_pending_index" in missing
        assert "webhook_event_pending" not in await _webhook_indexes()
        await webhooks.insert_events([(f'{{"entry": [], "n": {i}}}', utcnow()) for i in range(500)])
        await WebhookEvent.filter(id__lte=100).update(processed_at=utcnow())
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        applied, missing, unknown = await schema_state()
        assert "0004_webhook_pending_index" in applied and missing == [] and unknown == []
        assert "webhook_event_pending" in await _webhook_indexes()
        assert await webhooks.backlog() == 400
        plan = await _claim_plan()
        # PostgreSQL walks the partial index; SQLite takes IS NULL as an equality on (processed_at, id).
        assert ("webhook_event_pending" if USE_POSTGRES else "webhook_event_todo") in plan, plan
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
        conn = connections.get("default")
        _, rows = await conn.execute_query(CLAIM)
        assert [int(dict(r)["id"]) for r in rows] == list(range(101, 401))
    finally:
        await close_db()


@pytest.mark.skipif(not USE_POSTGRES, reason="CREATE INDEX CONCURRENTLY is PostgreSQL's")
async def test_an_invalid_index_left_by_an_interrupted_build_is_built_again(empty_database_url: str) -> None:
    await _at_0003(empty_database_url)
    try:
        conn = connections.get("default")
        # What an interrupted CREATE INDEX CONCURRENTLY leaves behind: the index exists, marked invalid.
        await conn.execute_script(
            "CREATE INDEX webhook_event_pending ON webhook_event (id) WHERE processed_at IS NULL; "
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'webhook_event_pending'::regclass"
        )
    finally:
        await close_db()

    await open_db(load_settings(DATABASE_URL=empty_database_url, WHATSAPP_PROVIDER="sandbox"))
    try:
        _, rows = await connections.get("default").execute_query(
            "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'webhook_event_pending'::regclass"
        )
        assert rows and rows[0]["indisvalid"] is True
    finally:
        await close_db()


@pytest.mark.skipif(not USE_POSTGRES, reason="the planner setting is PostgreSQL's")
async def test_sorting_is_off_for_the_claim_only(db: object) -> None:
    """The rest of the applier's transaction (recipient rows in id order, ...) plans with sorting as usual."""
    await webhooks.insert_events([('{"entry": []}', utcnow())])
    async with in_transaction() as tx:
        claimed = await webhooks.apply.claim_events(tx, 10)
        _, rows = await tx.execute_query("SHOW enable_sort")
    assert len(claimed) == 1
    assert rows[0]["enable_sort"] == "on"
