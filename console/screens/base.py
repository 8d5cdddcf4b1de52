"""Provides what every console screen shares: access to the app's settings, the read-only rule, the live
refresh loop (re-armed after each success, so polls never overlap) and turning worker errors into notifications.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from shared.errors import BlastError
from shared.text import first_line

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

#: Actions that change something: hidden and refused when the console is read-only.
MUTATING_ACTIONS = frozenset(
    {
        "cancel_blast",
        "retry_blast",
        "pause_resume",
        "edit_blast",
        "new_blast",
        "test_send",
        "sync_templates",
        "submit_template",
        "stop_all",
        "resume_all",
        "add_suppression",
        "remove_suppression",
        "import_suppression",
        "retry_job",
        "create_blast",
        "create_token",
        "revoke_token",
        "add_sender",
        "remove_sender",
    }
)
#: Worker group of the periodic refresh; its failures show in the banner, not as notifications.
REFRESH_GROUP = "refresh"


class ConsoleApp(Protocol):
    """What screens need from the console app (console/app.py's BlastConsole provides it): screens depend on
    this, not on the app module, so the app can import its screens without a circle."""

    @property
    def settings(self) -> Settings: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def is_frozen(self) -> bool: ...
    def now(self) -> datetime: ...
    def show_error(self, error: BaseException | None) -> None: ...
    def refuse_if_read_only(self) -> bool: ...
    def open_blast_form(self, blast_id: int | None = None) -> None: ...
    def open_test_send(self) -> None: ...
    def action_sync_templates(self) -> None: ...


class BaseScreen(Screen[None]):
    """A screen of the console with an optional live refresh every REFRESH_S seconds."""

    REFRESH_S: ClassVar[float] = 1.0
    RETRY_S: ClassVar[float] = 2.0
    _refresh_timer: Timer | None = None

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def on_mount(self) -> None:
        self.start_refresh()

    def on_screen_suspend(self) -> None:
        # The keys panel belongs to the moment it was asked for: it does not come back with the screen.
        self.query("HelpPanel").remove()

    def start_refresh(self) -> None:
        """Load now; every successful load re-arms the next one."""
        self.refresh_data()

    def refresh_data(self) -> None:
        """Start the screen's load worker (override; decorate the loader with @work(group=REFRESH_GROUP))."""

    def rearm(self, delay: float | None = None) -> None:
        """Arm the one refresh timer of this screen (a manual reload replaces it, so loops never multiply)."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
        self._refresh_timer = self.set_timer(self.REFRESH_S if delay is None else delay, self._tick)

    def _tick(self) -> None:
        if not self.is_attached:
            return
        if self.console.is_frozen or self.app.screen is not self:
            # Frozen, or covered by another screen: look again later without querying anything.
            self.rearm()
            return
        self.refresh_data()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MUTATING_ACTIONS and self.console.read_only)

    def refuse_if_read_only(self) -> bool:
        """True (and a notification) when a mutating action must be refused (e.g. reached via the palette)."""
        return self.console.refuse_if_read_only()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            if worker.group == REFRESH_GROUP:
                # The banner says what is unreachable; keep trying so the screen recovers by itself.
                log.warning("refresh of %s failed: %s", type(self).__name__, worker.error)
                self.rearm(self.RETRY_S)
                return
            self.console.show_error(worker.error)
        elif event.state == WorkerState.SUCCESS and worker.group == REFRESH_GROUP:
            self.rearm()


def error_text(error: BaseException | None) -> tuple[str, str]:
    """(title, message) of an error for a notification."""
    if isinstance(error, BlastError):
        return error.title, error.message
    if error is None:
        return "Error", "unknown error"
    return type(error).__name__, first_line(error)
