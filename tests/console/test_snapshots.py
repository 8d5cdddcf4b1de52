"""Snapshot tests of the main screens at 80x24 and 120x40, with a frozen clock and data whose ids and times are
the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from console.app import BlastConsole
from console.screens.base import BaseScreen
from shared.config import Settings
from shared.db import close_db, open_db
from shared.status import BlastStatus
from tests.conftest import USE_POSTGRES, _truncate
from tests.console.conftest import frozen_clock, seed_blast, seed_template, settle

B = BlastStatus
SIZES = [(80, 24), (120, 40)]
SnapCompare = Callable[..., bool]


class SnapshotConsole(BlastConsole):
    """The console with its database opened (and seeded) on the snapshot's own event loop."""

    REDIS_IN_HEADER = False  # the test Redis's address is not part of the picture

    async def run_async(self, **kwargs: Any) -> Any:
        await open_db(self.settings)
        try:
            if USE_POSTGRES:
                await _truncate()
            t = await seed_template()
            await seed_blast(t, "June promo Jakarta", B.PROCESSING, n=40, sent=22, failed=3)
            await seed_blast(t, "Order updates", B.SCHEDULED, n=12, phone_base=100)
            await seed_blast(t, "Spring sale", B.COMPLETED, n=30, sent=28, failed=2, phone_base=200)
            await seed_blast(t, "Paused reminder", B.PAUSED, n=8, sent=4, phone_base=300)
            return await super().run_async(**kwargs)
        finally:
            await close_db()


@pytest.fixture(autouse=True)
def no_live_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Screens load once and do not reload every second: on a loaded machine a reload could land while the picture
    is taken and catch a table being refilled. The live refresh has its own Pilot tests."""
    monkeypatch.setattr(BaseScreen, "REFRESH_S", 3600.0)


@pytest.fixture
def snap_settings(make_settings: Callable[..., Settings]) -> Settings:
    # A fixed prefix: the stream names shown on the dashboard are part of the picture.
    return make_settings(BLAST_REDIS_PREFIX="blastsnap", BLAST_TIMEZONE="Asia/Jakarta")


def _app(settings: Settings) -> SnapshotConsole:
    return SnapshotConsole(settings, clock=frozen_clock)


@pytest.mark.parametrize("size", SIZES)
def test_blasts_screen(snap_compare: SnapCompare, snap_settings: Settings, size: tuple[int, int]) -> None:
    """The blasts table: four blasts newest first, status colours, progress bars, send times in Asia/Jakarta,
    the status line with the page and filters, the footer with c/p/r/e/n/t keys."""

    async def before(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(_app(snap_settings), run_before=before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_blast_detail(snap_compare: SnapCompare, snap_settings: Settings, size: tuple[int, int]) -> None:
    """The detail of the PROCESSING blast: counts per bucket, progress, the recipients page with FAILED rows."""

    async def before(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")  # the oldest row is the PROCESSING blast
        await settle(pilot)

    assert snap_compare(_app(snap_settings), run_before=before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard(snap_compare: SnapCompare, snap_settings: Settings, size: tuple[int, int]) -> None:
    """The dashboard: sandbox banner, blasts by status, no daemon alive, the (empty) work stream."""

    async def before(pilot: Pilot[None]) -> None:
        await settle(pilot)

    assert snap_compare(_app(snap_settings), run_before=before, terminal_size=size)


def test_cancel_confirmation(snap_compare: SnapCompare, snap_settings: Settings) -> None:
    """The cancel confirmation over the blasts screen at 80x24, naming the blast and its pending count."""

    async def before(pilot: Pilot[None]) -> None:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)

    assert snap_compare(_app(snap_settings), run_before=before, terminal_size=(80, 24))
