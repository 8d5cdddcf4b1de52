"""Provides opening and closing the database (tortoise) and bringing its schema to the current version.

Either program migrates an empty or older database by itself. Concurrent starts are serialised: a PostgreSQL
advisory lock held on a connection of its own, or an exclusive file lock beside the SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tortoise import Tortoise, connections
from tortoise.migrations.executor import MigrationExecutor
from tortoise.migrations.loader import MigrationLoader
from tortoise.migrations.recorder import MigrationRecorder

from shared import tortoise_guard
from shared.config import Settings, mask_url
from shared.errors import DatabaseError, SchemaError
from shared.text import first_line

log = logging.getLogger(__name__)

APP = "models"
MIGRATIONS_MODULE = "shared.migrations"
#: Oldest schema (migration name) this release runs on: a daemon of this release keeps working while an older
#: database has not yet been upgraded only if it has at least this (expand-then-contract upgrades).
#: 0006_pricing: the webhook applier reads and writes the recipients' pricing columns.
#: 0007_local_time: claims and the scheduler read the recipients' due times and the blasts' due groups.
#: 0008_senders: every read of a blast selects its sender pool; pool chunks claim by the recipients' sender.
#: 0009_accepted_due: every read of a blast selects the due time its missed-schedule check accepted.
OLDEST_SUPPORTED_SCHEMA = "0009_accepted_due"
#: The other direction: the oldest release that still runs on the schema this release leaves behind, named by the
#: newest migration that release knows. Recorded in the database when this release migrates, so that a daemon of
#: an older release that restarts mid-upgrade (crash, watchdog) keeps working instead of crash-looping. Raise it
#: only in a release whose migrations *contract* (drop or rename what older code still uses).
OLDEST_COMPATIBLE_CODE = "0001_initial"
_COMPAT_TABLE = "blast_schema_compat"
_PG_LOCK_KEY = 0x626C617374  # "blast"


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The tortoise configuration for this database URL."""
    url = database_url
    if url.startswith("sqlite://"):
        # WAL lets the console read while the daemon writes; the busy timeout waits out short write locks.
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}journal_mode=WAL&busy_timeout=15000&journal_size_limit=67108864"
    return {
        "connections": {"default": url},
        "apps": {
            APP: {
                "models": ["shared.models"],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite://")


def sqlite_path(database_url: str) -> Path | None:
    """The file of an sqlite:// URL (None for in-memory)."""
    rest = database_url[len("sqlite://") :].split("?", 1)[0]
    if rest in ("", ":memory:", "/:memory:"):
        return None
    return Path(rest)


def _check_sqlite_dir(database_url: str) -> None:
    path = sqlite_path(database_url)
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DatabaseError(
            f"cannot open database {database_url}: directory {parent} does not exist; "
            "create it or set DATABASE_URL (see README, Configuration)"
        )
    if path.exists() and not os.access(path, os.R_OK):
        raise DatabaseError(f"cannot open database {database_url}: permission denied for this user")


async def known_migrations() -> list[str]:
    """Migration names shipped with this program, in order."""
    loader = MigrationLoader({APP: {"migrations": MIGRATIONS_MODULE}}, _NoRecorder(), load=False)  # type: ignore[arg-type]
    await loader.build_graph()
    leaves = loader.graph.leaf_nodes(APP)
    return [key.name for key in loader.graph.forwards_plan(leaves[0])] if leaves else []


class _NoRecorder:
    async def applied_migrations(self) -> list[Any]:
        return []


async def applied_migrations() -> list[str]:
    recorder = MigrationRecorder(connections.get("default"))
    return [key.name for key in await recorder.applied_migrations() if key.app_label == APP]


async def schema_state() -> tuple[list[str], list[str], list[str]]:
    """(applied, missing, unknown) migration names of the open database."""
    known = await known_migrations()
    applied = await applied_migrations()
    missing = [m for m in known if m not in applied]
    unknown = [m for m in applied if m not in known]
    return applied, missing, unknown


async def check_schema(*, require_current: bool) -> None:
    """Refuse a schema newer than this program, or (with require_current) one not yet upgraded.

    Raises:
        SchemaError: naming the versions and what to do.
    """
    _, missing, unknown = await schema_state()
    if unknown:
        floor = await _compatible_code_floor()
        if floor is None or floor not in await known_migrations():
            raise SchemaError(
                f"the database schema is newer than this program (it has {', '.join(unknown)}); "
                "upgrade blast on this machine before using it with this database"
            )
        log.warning(
            "the database schema is newer than this program (it has %s) but still runs releases that know %s: "
            "going on; upgrade blast on this machine soon",
            ", ".join(unknown),
            floor,
        )
    if missing and (require_current or OLDEST_SUPPORTED_SCHEMA in missing):
        raise SchemaError(
            f"the database schema is out of date (missing {', '.join(missing)}); run `blast-daemon migrate`"
        )


@contextlib.asynccontextmanager
async def _migration_lock(database_url: str) -> AsyncIterator[None]:
    if is_sqlite(database_url):
        path = sqlite_path(database_url)
        if path is None:
            yield
            return
        lock_path = path.with_name(path.name + ".migrate.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        # Polled, not waited for in one statement: a waiting statement holds a snapshot, and CREATE INDEX
        # CONCURRENTLY (migration 0004) in the process that holds the lock waits for every older snapshot.
        delay = 0.05
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _PG_LOCK_KEY):
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", _PG_LOCK_KEY)
        await conn.close()


async def migrate(database_url: str) -> list[str]:
    """Apply every missing migration (the database must be open). Returns the names applied.

    Raises:
        SchemaError: the database is newer than this program.
    """
    async with _migration_lock(database_url):
        _, missing, unknown = await schema_state()
        if unknown:
            await check_schema(require_current=False)
            return []  # a newer release's schema that this one runs on: never migrate it, never lower the floor
        if missing:
            executor = MigrationExecutor(connections.get("default"), tortoise_config(database_url)["apps"])
            await executor.migrate()
            for name in missing:
                log.info("database migrated: %s", name)
        if missing or await _compatible_code_floor() != OLDEST_COMPATIBLE_CODE:
            try:
                await _record_compatible_code_floor()
            except Exception as exc:  # a read-only role (the viewer's console) cannot, and need not
                log.debug("schema compatibility floor not recorded: %s", exc)
        return missing


async def _compatible_code_floor() -> str | None:
    """The oldest release (by migration name) that the schema's newest release said can still run on it.

    The promise counts only if the release that wrote it also applied the newest migration (migration names are
    numbered, so the newest sorts last): a schema changed by a release that made no promise runs nothing older.
    """
    try:
        _, rows = await connections.get("default").execute_query(
            f"SELECT min_code_schema, head FROM {_COMPAT_TABLE} WHERE id = 1"
        )
    except Exception:  # a schema written before releases recorded it: no promise
        return None
    applied = await applied_migrations()
    if not rows or not applied or str(rows[0]["head"]) != max(applied):
        return None
    return str(rows[0]["min_code_schema"])


async def _record_compatible_code_floor() -> None:
    """Write this release's promise (OLDEST_COMPATIBLE_CODE), with its newest migration as the writer."""
    known = await known_migrations()
    conn = connections.get("default")
    await conn.execute_script(
        f"CREATE TABLE IF NOT EXISTS {_COMPAT_TABLE} (id INTEGER PRIMARY KEY, "
        "min_code_schema VARCHAR(100) NOT NULL, head VARCHAR(100) NOT NULL)"
    )
    await conn.execute_script(
        f"INSERT INTO {_COMPAT_TABLE} (id, min_code_schema, head) VALUES (1, '{OLDEST_COMPATIBLE_CODE}', "
        f"'{known[-1]}') ON CONFLICT (id) DO UPDATE SET min_code_schema = excluded.min_code_schema, "
        "head = excluded.head"
    )


async def open_db(settings: Settings, *, migrate_schema: bool = True) -> None:
    """Connect tortoise and make sure the schema is usable.

    Args:
        settings: where the database is.
        migrate_schema: apply missing migrations (both programs do on an empty database; the daemon may be told
            not to with BLAST_AUTO_MIGRATE=false, then an out-of-date schema is refused).

    Raises:
        DatabaseError: cannot connect (the message names the database, never its password).
        SchemaError: the schema is newer than this program, or too old and not migrated.
    """
    url = settings.DATABASE_URL
    tortoise_guard.guard_transaction_enter()
    if is_sqlite(url):
        _check_sqlite_dir(url)
    try:
        await Tortoise.init(config=tortoise_config(url))
        await connections.get("default").execute_query("SELECT 1")
    except (DatabaseError, SchemaError):
        raise
    except Exception as exc:
        await close_db()
        raise DatabaseError(
            f"cannot connect to database {mask_url(url)}: {first_line(exc, limit=200)}"
        ) from None
    try:
        applied = await applied_migrations()
        if migrate_schema or not applied:
            await migrate(url)
        await check_schema(require_current=not migrate_schema and not applied)
    except BaseException:
        await close_db()
        raise


async def close_db() -> None:
    with contextlib.suppress(Exception):
        await connections.close_all()
    with contextlib.suppress(Exception):
        await Tortoise._reset_apps()  # private, but what close + re-init needs


@contextlib.asynccontextmanager
async def database(settings: Settings, *, migrate_schema: bool = True) -> AsyncIterator[None]:
    """Open the database for the duration of the block."""
    await open_db(settings, migrate_schema=migrate_schema)
    try:
        yield
    finally:
        await close_db()


#: For tortoise's own CLI when writing a new migration: `tortoise -c shared.db.TORTOISE_ORM makemigrations`.
TORTOISE_ORM = tortoise_config(os.environ.get("DATABASE_URL", "sqlite://:memory:"))
