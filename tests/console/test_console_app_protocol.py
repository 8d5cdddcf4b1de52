"""Screens know the app only through console.screens.base.ConsoleApp: BlastConsole must provide all of it."""

from __future__ import annotations

from console.app import BlastConsole
from console.screens.base import ConsoleApp
from shared.config import Settings


def provides(app: BlastConsole) -> ConsoleApp:
    return app  # mypy --strict checks here that BlastConsole satisfies the Protocol


def test_the_app_gives_screens_what_they_need(settings: Settings) -> None:
    from console.app import build_app

    app = provides(build_app(settings))
    assert app.settings is settings and app.read_only is False and app.is_frozen is False
    for name in ("now", "show_error", "open_blast_form", "open_test_send", "action_sync_templates"):
        assert callable(getattr(app, name))
