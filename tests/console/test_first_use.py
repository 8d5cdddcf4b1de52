"""Pilot tests of what a new operator trips over first: the keys panel, the send-at hint, plurals, the CSV path."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from textual.pilot import Pilot
from textual.widgets import Input, Label

from console.format import example_send_time
from console.modals.edit import EditBlastModal
from console.screens.blast_form import BlastFormScreen
from console.widgets.csv_preview import CsvPreviewBox
from shared.config import Settings
from shared.status import BlastStatus
from shared.text import plural
from tests.console.conftest import (
    FROZEN_NOW,
    AppFactory,
    seed_blast,
    seed_template,
    settle,
    text_of,
    write_csv,
)


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


def send_at_hint(pilot: Pilot[None], settings: Settings) -> datetime:
    """The example time in the screen's "Send at" hint, read in the console's zone."""
    label = next(text_of(w) for w in pilot.app.screen.query(Label) if text_of(w).startswith("Send at"))
    found = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d)", label)
    assert found, label
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=settings.zone)


async def test_the_send_at_hints_show_a_time_to_come(db: Settings, make_app: AppFactory) -> None:
    t = await seed_template()
    await seed_blast(t, "later", BlastStatus.SCHEDULED)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_blast_form()
        await settle(pilot)
        assert FROZEN_NOW < send_at_hint(pilot, db) <= FROZEN_NOW + timedelta(days=2)
        await pilot.press("escape", "2")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EditBlastModal)
        assert FROZEN_NOW < send_at_hint(pilot, db) <= FROZEN_NOW + timedelta(days=2)


def test_the_example_is_tomorrow_morning_in_the_blasts_zone() -> None:
    late_evening_utc = datetime(2030, 6, 1, 20, 0, tzinfo=UTC)  # already June 2 in Jakarta
    assert example_send_time(late_evening_utc, ZoneInfo("Asia/Jakarta")) == "2030-06-03 09:00"
    assert example_send_time(late_evening_utc, ZoneInfo("UTC")) == "2030-06-02 09:00"


def test_plural() -> None:
    assert [plural(n, "recipient") for n in (0, 1, 2, 1200)] == [
        "0 recipients",
        "1 recipient",
        "2 recipients",
        "1,200 recipients",
    ]
    assert plural(1200, "blast", grouped=False) == "1200 blasts"
    assert plural(1, "calling code") == "1 calling code" and plural(3, "entry", "entries") == "3 entries"


async def test_the_csv_preview_says_one_recipient(db: Settings, make_app: AppFactory, tmp_path: Path) -> None:
    await seed_template()
    one = write_csv(tmp_path / "one.csv", ["+6281234567890,Ada,A-1"])
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        app.screen.query_one("#form-csv", Input).focus()
        await pilot.press(*str(one), "enter")
        await settle(pilot)
        preview = text_of(app.screen.query_one(CsvPreviewBox))
        assert preview.startswith("1 recipient, 0 rejected rows, 0 duplicates\n"), preview


async def test_the_csv_path_completes_over_its_directory(
    db: Settings, make_app: AppFactory, tmp_path: Path
) -> None:
    await seed_template()
    write_csv(tmp_path / "recipients.csv", ["+6281234567890,Ada,A-1"])
    (tmp_path / "records").mkdir()
    (tmp_path / "readme.txt").write_text("not a CSV", encoding="utf-8")
    (tmp_path / ".hidden.csv").write_text("phone\n", encoding="utf-8")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        field = app.screen.query_one("#form-csv", Input)
        field.focus()
        await pilot.press(*f"{tmp_path}/rec")
        await settle(pilot)
        await pilot.press("right")  # accepts the suggestion: the directory comes first
        assert field.value == f"{tmp_path}/records/"
        field.value = ""
        await pilot.press(*f"{tmp_path}/reci")
        await settle(pilot)
        await pilot.press("right")
        assert field.value == f"{tmp_path}/recipients.csv"
        await pilot.press("enter")  # and Enter reads the completed file
        await settle(pilot)
        assert text_of(app.screen.query_one(CsvPreviewBox)).startswith("1 recipient")


def test_path_suggestions_skip_other_files_and_hidden_ones(tmp_path: Path) -> None:
    from console.widgets.path_suggester import PathSuggester

    (tmp_path / "readme.txt").write_text("", encoding="utf-8")
    (tmp_path / ".hidden.csv").write_text("", encoding="utf-8")
    (tmp_path / "June.CSV").write_text("", encoding="utf-8")
    s = PathSuggester()
    assert s.complete(f"{tmp_path}/re") is None
    assert s.complete(f"{tmp_path}/") == f"{tmp_path}/June.CSV"
    assert s.complete(f"{tmp_path}/.h") == f"{tmp_path}/.hidden.csv"
    assert s.complete(f"{tmp_path}/June.CSV") is None
    assert s.complete(f"{tmp_path}/nowhere/x") is None
