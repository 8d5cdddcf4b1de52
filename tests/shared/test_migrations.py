"""Migrations: empty -> head on SQLite and PostgreSQL, concurrent starts, a newer schema refused."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from tortoise import connections

from shared.config import Settings, load_settings
from shared.db import close_db, known_migrations, open_db, schema_state
from shared.errors import SchemaError
from tests.conftest import USE_POSTGRES


def _settings(url: str) -> Settings:
    return load_settings(DATABASE_URL=url, WHATSAPP_PROVIDER="sandbox")


async def _tables() -> set[str]:
    conn = connections.get("default")
    if USE_POSTGRES:
        _, rows = await conn.execute_query(
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
        )
    else:
        _, rows = await conn.execute_query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r["name"] for r in rows}


async def test_empty_database_reaches_head(empty_database_url: str) -> None:
    await open_db(_settings(empty_database_url))
    try:
        applied, missing, unknown = await schema_state()
        assert applied == await known_migrations()
        assert missing == [] and unknown == []
        assert {"blast", "recipient", "template", "audit_log", "suppression"} <= await _tables()
    finally:
        await close_db()
    # a second start finds nothing to do
    await open_db(_settings(empty_database_url))
    try:
        assert (await schema_state())[1] == []
    finally:
        await close_db()


def test_three_processes_migrating_an_empty_database_at_once(empty_database_url: str, tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from shared.config import load_settings\n"
        "from shared.db import open_db, close_db, schema_state\n"
        "async def main():\n"
        "    await open_db(load_settings(DATABASE_URL=sys.argv[1], WHATSAPP_PROVIDER='sandbox'))\n"
        "    print(len((await schema_state())[0]))\n"
        "    await close_db()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert int(out.strip()) >= 1

    async def check() -> None:
        await open_db(_settings(empty_database_url))
        try:
            applied, missing, _ = await schema_state()
            assert missing == []
            assert len(applied) == len(set(applied))  # each migration recorded once
        finally:
            await close_db()

    asyncio.run(check())


async def test_newer_schema_is_refused_with_a_clear_message(empty_database_url: str) -> None:
    await open_db(_settings(empty_database_url))
    try:
        await connections.get("default").execute_query(
            "INSERT INTO tortoise_migrations (app, name, applied_at) VALUES ('models', '9999_from_the_future', "
            "CURRENT_TIMESTAMP)"
        )
    finally:
        await close_db()
    with pytest.raises(SchemaError, match=r"newer than this program .*9999_from_the_future"):
        await open_db(_settings(empty_database_url))


async def test_unmigrated_database_is_refused_when_auto_migrate_is_off(empty_database_url: str) -> None:
    """With migrate_schema=False an empty database is still brought up (a newcomer runs no setup step)."""
    await open_db(_settings(empty_database_url), migrate_schema=False)
    try:
        assert (await schema_state())[1] == []
    finally:
        await close_db()
