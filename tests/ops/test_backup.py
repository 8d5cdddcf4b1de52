"""deploy/blast-backup makes a restorable copy of the database while it is open: SQLite through the online backup
API, PostgreSQL through pg_dump (restored with pg_restore into a new database and compared)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import Settings
from shared.db import database
from shared.models import Recipient
from tests.conftest import USE_POSTGRES, _pg_exec, _pg_url_for, reset_database
from tests.factories import make_blast, make_template
from tests.ops.helpers import clean_env, write_env_files

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "blast-backup"


def _seed(settings: Settings) -> int:
    async def go() -> int:
        async with database(settings):
            await make_blast(await make_template(), n=25)
            return await Recipient.all().count()

    return asyncio.run(go())


def _backup(settings: Settings, tmp_path: Path) -> Path:
    env_file = write_env_files(tmp_path, {"DATABASE_URL": settings.DATABASE_URL}, {})
    env = clean_env(env_file, BLAST_VENV=str(Path(sys.executable).parent.parent), BLAST_BACKUP_KEEP="1")
    dest = tmp_path / "backups"
    for _ in range(2):  # the second run's retention removes the first copy
        result = subprocess.run(
            ["/bin/sh", str(SCRIPT), str(dest)], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("backup written: ")
        assert "@" not in result.stdout + result.stderr  # no URL (and so no password) printed
    files = sorted(p for p in dest.iterdir())
    assert len(files) == 1 and not files[0].name.endswith(".part")
    assert files[0].stat().st_mode & 0o077 == 0  # backups are private
    return files[0]


def test_sqlite_backup_while_open(settings: Settings, tmp_path: Path) -> None:
    if USE_POSTGRES:
        pytest.skip("SQLite backup: this run uses PostgreSQL")
    count = _seed(settings)
    copy = _backup(settings, tmp_path)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT COUNT(*) FROM recipient").fetchone()[0] == count
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_postgres_dump_and_restore(settings: Settings, tmp_path: Path) -> None:
    if not USE_POSTGRES:
        pytest.skip("PostgreSQL backup: set BLAST_TEST_DATABASE_URL=postgres://… to run it")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore are not installed")
    reset_database(settings)
    count = _seed(settings)
    dump = _backup(settings, tmp_path)
    name = f"{settings.DATABASE_URL.rsplit('/', 1)[1]}_restore"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    try:
        target = _pg_url_for(name).replace("postgres://", "postgresql://", 1)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={target}", str(dump)], check=True, timeout=60)
        out = subprocess.run(
            ["psql", target, "-tAc", "SELECT COUNT(*) FROM recipient"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert int(out.stdout.strip()) == count
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
