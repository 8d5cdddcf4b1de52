"""Pilot tests of what a new operator trips over first: the keys panel, the send-at hint, plurals, the CSV path."""

from __future__ import annotations

from textual.pilot import Pilot

from console.screens.blast_form import BlastFormScreen
from shared.config import Settings
from tests.console.conftest import AppFactory, settle


def panels(pilot: Pilot[None]) -> int:
    return len(pilot.app.screen.query("HelpPanel"))


async def test_escape_closes_the_keys_panel_and_it_does_not_come_back(
    db: Settings, make_app: AppFactory
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert panels(pilot) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert panels(pilot) == 0
        # opened, then left for another screen: coming back shows the screen alone
        await pilot.press("question_mark", "2")
        await settle(pilot)
        assert panels(pilot) == 0
        await pilot.press("1")
        await settle(pilot)
        assert panels(pilot) == 0
        # on a screen where escape means "back", the first escape closes the panel, the second goes back
        app.open_blast_form()
        await settle(pilot)
        app.action_toggle_help()  # "?" would be typed into the focused name field
        await pilot.pause()
        assert panels(pilot) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, BlastFormScreen) and panels(pilot) == 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, BlastFormScreen)
