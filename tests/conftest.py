"""Fixtures on real services: the shared Redis under a fresh key prefix, and a fresh SQLite or PostgreSQL database.

BLAST_TEST_DATABASE_URL chooses the database kind: unset or sqlite -> a new SQLite file per test; a postgres://
URL -> a new PostgreSQL database per test run (created beside the given one, dropped at the end), tables emptied
between tests. BLAST_TEST_REDIS_URL is the shared Redis (default redis://127.0.0.1:6379/0); every test gets its own
key prefix and its keys are deleted afterwards. Tests that stop, restart or flush Redis use `private_redis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import settings as hypothesis_settings

from shared.config import Settings, get_settings, load_settings
from shared.db import close_db, open_db

# Property tests explore new examples on every run of a developer's machine ("dev"); CI (.ci/run sets
# BLAST_HYPOTHESIS_PROFILE=ci) replays the same ones each time, so that a landing never fails on an example nobody
# has seen. A case hypothesis finds is kept as an @example beside its test.
hypothesis_settings.register_profile("dev")
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("BLAST_HYPOTHESIS_PROFILE", "dev"))

RUN_ID = uuid.uuid4().hex[:8]
TEST_REDIS_URL = os.environ.get("BLAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_DB_ENV = os.environ.get("BLAST_TEST_DATABASE_URL", "sqlite").strip()
USE_POSTGRES = _DB_ENV.startswith(("postgres://", "postgresql://"))


def _pg_admin_url() -> str:
    return _DB_ENV.replace("postgresql://", "postgres://", 1)


def _pg_url_for(dbname: str) -> str:
    base = _pg_admin_url()
    head, _, _ = base.rpartition("/")
    return f"{head}/{dbname}"


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin_url().replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this run (None on SQLite runs)."""
    if not USE_POSTGRES:
        yield None
        return
    name = f"blast_test_{RUN_ID}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url_for(name)
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def empty_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all (a new PostgreSQL database, or a new SQLite file), for migration tests."""
    if not USE_POSTGRES:
        yield f"sqlite://{tmp_path / 'empty.db'}"
        return
    name = f"blast_empty_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url_for(name)
    finally:
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_database: str | None, tmp_path: Path) -> str:
    if pg_database is not None:
        return pg_database
    return f"sqlite://{tmp_path / 'blast.db'}"


@pytest.fixture
def redis_prefix() -> str:
    return f"blasttest-{RUN_ID}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_settings(database_url: str, redis_prefix: str) -> Iterator[object]:
    """A factory of Settings for this test: its database, its Redis prefix, the sandbox provider."""

    def factory(**overrides: object) -> Settings:
        base: dict[str, object] = {
            "DATABASE_URL": database_url,
            "REDIS_URL": TEST_REDIS_URL,
            "BLAST_REDIS_PREFIX": redis_prefix,
            "WHATSAPP_PROVIDER": "sandbox",
            "BLAST_HTTP_PORT": 0,
        }
        base.update(overrides)
        return load_settings(**base)

    yield factory


@pytest.fixture
def settings(make_settings: object) -> Settings:
    factory = make_settings
    assert callable(factory)
    result = factory()
    assert isinstance(result, Settings)
    return result


@pytest.fixture
def env_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The test's settings also in the environment, for code (and subprocesses) that read get_settings()."""
    monkeypatch.setenv("BLAST_ENV_FILE", os.devnull)
    monkeypatch.setenv("DATABASE_URL", settings.DATABASE_URL)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BLAST_REDIS_PREFIX", settings.BLAST_REDIS_PREFIX)
    monkeypatch.setenv("WHATSAPP_PROVIDER", settings.WHATSAPP_PROVIDER)
    monkeypatch.setenv("BLAST_HTTP_PORT", "0")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


async def _truncate() -> None:
    """Empty every table but the migration record (PostgreSQL runs share one database per run)."""
    from tortoise import connections

    conn = connections.get("default")
    _, rows = await conn.execute_query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'tortoise_migrations'"
    )
    tables = ", ".join(f'"{r["tablename"]}"' for r in rows)
    if tables:
        await conn.execute_script(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def reset_database(settings: Settings) -> None:
    """For synchronous tests (CLI, subprocesses): bring the test database to the current schema, empty."""

    async def go() -> None:
        await open_db(settings)
        try:
            if USE_POSTGRES:
                await _truncate()
        finally:
            await close_db()

    asyncio.run(go())


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """The test's database, open and at the current schema."""
    await open_db(settings)
    if USE_POSTGRES:
        await _truncate()
    try:
        yield settings
    finally:
        await close_db()


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client of the shared test Redis; every key under the test's prefix is deleted afterwards."""
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=False)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.BLAST_REDIS_PREFIX}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, on a free port, that the test may stop, restart or flush."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with tempfile.TemporaryDirectory(prefix="blast-redis-") as workdir:
        server = PrivateRedis(Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()
