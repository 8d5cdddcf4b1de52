"""NO_COLOR=1: the console runs without colour, and statuses and progress still read as words and numbers."""

from __future__ import annotations

import pytest
from rich.color import Color

from console.app import BlastConsole
from shared.config import Settings
from shared.status import BlastStatus
from tests.console.conftest import AppFactory, seed_blast, seed_template, settle

B = BlastStatus


def _is_grey(color: Color | None) -> bool:
    if color is None or color.is_default:
        return True
    r, g, b = color.get_truecolor()
    return r == g == b


def screen_text(app: BlastConsole) -> tuple[str, bool]:
    """The screen as the terminal gets it (line filters applied): its text, and whether any cell has a hue."""
    lines: list[str] = []
    coloured = False
    for strip in app.screen._compositor.render_strips():
        lines.append(strip.text)
        for segment in strip:
            style = segment.style
            if style is not None and not (_is_grey(style.color) and _is_grey(style.bgcolor)):
                coloured = True
    return "\n".join(lines), coloured


async def test_no_color_keeps_statuses_and_progress_readable(
    db: Settings, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    t = await seed_template()
    await seed_blast(t, "running", B.PROCESSING, n=40, sent=22, failed=3)
    await seed_blast(t, "later", B.SCHEDULED, n=12, phone_base=100)
    await seed_blast(t, "stopped", B.PAUSED, n=8, sent=4, phone_base=200)
    app = make_app()
    assert app.no_color
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        text, coloured = screen_text(app)
        assert not coloured
        for word in ("PROCESSING", "SCHEDULED", "PAUSED"):
            assert word in text
        assert "25/40" in text and " 62%" in text  # done/total and the bar's percentage
        assert "0/12" in text and "  0%" in text

        await pilot.press("down", "down", "enter")  # newest first: the third row is the PROCESSING blast
        await settle(pilot)
        text, coloured = screen_text(app)
        assert not coloured
        assert "PROCESSING" in text and "25/40 done" in text
        assert "failed 3" in text and "pending 15" in text
        assert "FAILED" in text and "131026" in text  # recipient rows say their status and Meta's code
