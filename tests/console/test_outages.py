"""Redis and the database going away while the console is open: the banner says which, the screens that do not
need the missing service keep working, and everything comes back by itself when the service does."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from console.app import BlastConsole, build_app
from console.widgets.banner import Banner
from shared.config import Settings
from shared.db import close_db, open_db
from shared.events import close_redis_clients
from shared.status import BlastStatus
from tests.conftest import RUN_ID, USE_POSTGRES, PrivateRedis, _pg_exec, _pg_url_for
from tests.console.conftest import frozen_clock, seed_blast, seed_template, text_of

B = BlastStatus


async def wait_until(pilot: Pilot[None], condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Let the app run until `condition()` holds (the health check runs every 2 s)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await pilot.pause(0.05)


def banner(app: BlastConsole) -> str:
    return text_of(app.screen.query_one(Banner))


@pytest.fixture
def settings(make_settings: Callable[..., Settings], private_redis: PrivateRedis) -> Settings:
    """This module's tests talk to a redis-server of their own (the shared one is never stopped)."""
    return make_settings(REDIS_URL=private_redis.url)


async def test_redis_outage_shows_in_the_banner_and_recovers(
    db: Settings, private_redis: PrivateRedis
) -> None:
    t = await seed_template()
    await seed_blast(t, "still listed", B.SCHEDULED)
    app = build_app(db, clock=frozen_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        rate = app.screen.query_one("#rate-now", Static)
        await wait_until(pilot, lambda: "messages/s now" in text_of(rate))
        assert "UNREACHABLE" not in banner(app)

        private_redis.stop()
        await wait_until(pilot, lambda: "REDIS UNREACHABLE" in banner(app))
        assert "DATABASE" not in banner(app)
        await wait_until(pilot, lambda: "Redis:" in text_of(rate))  # the dashboard says its figures are gone

        await pilot.press("2")  # the database-backed screens still work
        await wait_until(pilot, lambda: app.screen.query_one("#blast-table", DataTable).row_count == 1)
        assert "REDIS UNREACHABLE" in banner(app)
        await pilot.press("1")

        private_redis.start()
        await wait_until(pilot, lambda: "UNREACHABLE" not in banner(app))
        assert any("Redis is reachable again" in n.message for n in app._notifications)
        await wait_until(pilot, lambda: "messages/s now" in text_of(rate))  # live data is back
    await close_redis_clients()


async def test_database_check_failing_shows_in_the_banner(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The banner path alone (any database): the health check reports the database unreachable, then not."""
    from shared.services import health

    reason: list[str | None] = ["connection refused"]

    async def ping_db() -> str | None:
        return reason[0]

    monkeypatch.setattr(health, "ping_db", ping_db)
    app = build_app(db, clock=frozen_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "DATABASE UNREACHABLE: connection refused" in banner(app))
        reason[0] = None
        await wait_until(pilot, lambda: "UNREACHABLE" not in banner(app))
        assert any("database is reachable again" in n.message for n in app._notifications)


@pytest.mark.skipif(not USE_POSTGRES, reason="a real database outage needs PostgreSQL")
async def test_postgres_outage_shows_in_the_banner_and_recovers(
    make_settings: Callable[..., Settings],
) -> None:
    """A database of this test's own is closed to new connections and its sessions are ended (nothing else is
    touched), then opened again."""
    name = f"blast_test_{RUN_ID}_outage"
    await _pg_exec(f'CREATE DATABASE "{name}"')
    settings = make_settings(DATABASE_URL=_pg_url_for(name))
    try:
        await open_db(settings)
        try:
            t = await seed_template()
            await seed_blast(t, "in the database", B.SCHEDULED)
            app = build_app(settings, clock=frozen_clock)
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.press("2")
                table = app.screen.query_one("#blast-table", DataTable)
                await wait_until(pilot, lambda: table.row_count == 1)

                await _pg_exec(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await _pg_exec(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                )
                await wait_until(pilot, lambda: "DATABASE UNREACHABLE" in banner(app))
                assert table.row_count == 1  # what was shown stays on screen

                await _pg_exec(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                await wait_until(pilot, lambda: "UNREACHABLE" not in banner(app), timeout_s=30)
                assert any("database is reachable again" in n.message for n in app._notifications)
        finally:
            await close_redis_clients()
            await close_db()
    finally:
        await _pg_exec(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_the_header_names_the_redis_in_use(db: Settings, private_redis: PrivateRedis) -> None:
    """Host, role and TLS of the Redis the console talks to, in the header."""
    app = build_app(db, clock=frozen_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        expected = f"sandbox · Redis 127.0.0.1:{private_redis.port} (master, TLS no)"
        await wait_until(pilot, lambda: app.sub_title == expected)
    await close_redis_clients()
