"""Rolling upgrades: a release records the oldest release that still runs on the schema it leaves behind, so an
older daemon that restarts mid-upgrade keeps working on an expanded schema, and is refused (with the message)
only once a release has contracted what it needs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tortoise import Tortoise, connections

from shared import db as shared_db
from shared.config import Settings
from shared.db import close_db, known_migrations, open_db, tortoise_config
from shared.errors import SchemaError

FUTURE = "0099_from_a_newer_release"


@pytest.fixture
async def migrated(settings: Settings) -> AsyncIterator[Settings]:
    await open_db(settings)
    yield settings
    try:
        await connections.get("default").execute_script(
            f"DELETE FROM tortoise_migrations WHERE name = '{FUTURE}'"
        )
    finally:
        await close_db()


async def _newer_release_migrated(floor: str | None) -> None:
    """What a newer release leaves: one more migration applied, and its compatibility floor (or none)."""
    conn = connections.get("default")
    await conn.execute_script(
        "INSERT INTO tortoise_migrations (app, name, applied_at) "
        f"VALUES ('models', '{FUTURE}', CURRENT_TIMESTAMP)"
    )
    if floor is None:
        await conn.execute_script("DELETE FROM blast_schema_compat")
    elif floor == "stale":
        pass  # the newer release made no promise: the row still names this release as its writer
    else:
        await conn.execute_script(
            f"UPDATE blast_schema_compat SET min_code_schema = '{floor}', head = '{FUTURE}' WHERE id = 1"
        )


async def test_this_release_records_its_floor(migrated: Settings) -> None:
    _, rows = await connections.get("default").execute_query(
        "SELECT min_code_schema FROM blast_schema_compat"
    )
    assert [r["min_code_schema"] for r in rows] == [shared_db.OLDEST_COMPATIBLE_CODE]


async def test_an_older_daemon_restarting_on_an_expanded_schema_keeps_working(
    migrated: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The newer release only expanded: it says releases knowing our newest migration still run.
    await _newer_release_migrated((await known_migrations())[-1])
    await close_db()
    await open_db(migrated)  # the older daemon's restart (BLAST_AUTO_MIGRATE=true): no crash loop
    assert "the database schema is newer than this program" in caplog.text
    await close_db()
    await open_db(migrated, migrate_schema=False)  # and with BLAST_AUTO_MIGRATE=false
    _, rows = await connections.get("default").execute_query(
        "SELECT min_code_schema FROM blast_schema_compat"
    )
    assert rows[0]["min_code_schema"] == (await known_migrations())[-1]  # an older release never lowers it


@pytest.mark.parametrize("floor", [FUTURE, None, "stale"], ids=["contracted", "no-promise", "stale-promise"])
async def test_an_older_daemon_is_refused_once_the_schema_contracted(
    migrated: Settings, floor: str | None
) -> None:
    await _newer_release_migrated(floor)
    await close_db()
    with pytest.raises(SchemaError, match=rf"newer than this program \(it has {FUTURE}\); upgrade blast"):
        await open_db(migrated)
    # Reconnect without the schema check, so that the fixture can remove the newer release's row.
    await Tortoise.init(config=tortoise_config(migrated.DATABASE_URL))
