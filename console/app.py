"""Provides BlastConsole, the operator console (Textual), and build_app(), the factory production and tests
share.

Global bindings only live here; each screen owns its own. The app watches the database and Redis and shows a
banner while either is unreachable; screens keep polling and recover by themselves when they return.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.modals.confirm import ConfirmModal
from console.screens.base import MUTATING_ACTIONS, error_text
from console.screens.blasts import BlastsScreen
from console.screens.dashboard import DashboardScreen
from console.screens.jobs import JobsScreen
from console.screens.search import SearchScreen
from console.screens.senders import SendersScreen
from console.screens.suppression import SuppressionScreen
from console.screens.templates import TemplatesScreen
from console.screens.tokens import TokensScreen
from shared.config import Settings
from shared.services import blast_actions, health
from shared.text import plural

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
STYLES = Path(__file__).parent / "styles"
HEALTH_EVERY_S = 2.0
STOP_WORD = "STOP"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BlastConsole(App[None]):
    """The console: dashboard, blasts, templates, jobs, suppression list, phone search and API tokens, each a
    mode."""

    TITLE = "blast"
    CSS_PATH = [STYLES / "app.tcss"]
    MODES = {
        "dashboard": DashboardScreen,
        "blasts": BlastsScreen,
        "templates": TemplatesScreen,
        "jobs": JobsScreen,
        "suppression": SuppressionScreen,
        "search": SearchScreen,
        "tokens": TokensScreen,
        "senders": SendersScreen,
    }
    DEFAULT_MODE = "dashboard"
    #: The header names the Redis in use (host, role, TLS); snapshot tests turn it off (its address varies).
    REDIS_IN_HEADER = True
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Leave the console (the daemons keep sending)", id="app.quit"),
        Binding(
            "question_mark", "toggle_help", "Help", tooltip="Show every key of this screen", id="app.help"
        ),
        Binding(
            "escape",
            "close_help",
            "Close keys",
            priority=True,
            tooltip="Close the keys panel",
            id="app.close_help",
        ),
        Binding(
            "1",
            "switch_mode('dashboard')",
            "Dashboard",
            show=False,
            tooltip="Daemons, queues, rates",
            id="app.dashboard",
        ),
        Binding("2", "switch_mode('blasts')", "Blasts", show=False, tooltip="Every blast", id="app.blasts"),
        Binding(
            "3",
            "switch_mode('templates')",
            "Templates",
            show=False,
            tooltip="Message templates",
            id="app.templates",
        ),
        Binding(
            "4", "switch_mode('jobs')", "Jobs", show=False, tooltip="The daemons' recent jobs", id="app.jobs"
        ),
        Binding(
            "5",
            "switch_mode('suppression')",
            "Suppression",
            show=False,
            tooltip="Numbers never sent to",
            id="app.suppression",
        ),
        Binding(
            "6",
            "switch_mode('search')",
            "Search",
            show=False,
            tooltip="A phone number across all blasts",
            id="app.search",
        ),
        Binding(
            "7",
            "switch_mode('tokens')",
            "API tokens",
            show=False,
            tooltip="The HTTP API's tokens",
            id="app.tokens",
        ),
        Binding(
            "8",
            "switch_mode('senders')",
            "Senders",
            show=False,
            tooltip="The numbers blasts send from",
            id="app.senders",
        ),
        Binding(
            "X",
            "stop_all",
            "STOP ALL",
            show=False,
            tooltip="Emergency stop: pause every sending blast",
            id="app.stop_all",
        ),
        Binding(
            "z",
            "toggle_freeze",
            "Freeze",
            show=False,
            tooltip="Pause or restart the live refresh",
            id="app.freeze",
        ),
    ]

    #: Problems shown in red in every screen's banner (unreachable database or Redis).
    banner_errors: reactive[tuple[str, ...]] = reactive(tuple)
    #: Facts shown in every screen's banner (sandbox, read-only, frozen, daemon in-process).
    banner_notes: reactive[tuple[str, ...]] = reactive(tuple)
    read_only: reactive[bool] = reactive(False)
    is_frozen: reactive[bool] = reactive(False)

    def __init__(
        self,
        settings: Settings,
        *,
        read_only: bool = False,
        clock: Clock | None = None,
        daemon_log: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.clock: Clock = clock or _utcnow
        self.daemon_log = daemon_log
        self.set_reactive(BlastConsole.read_only, read_only)
        self.db_error: str | None = None
        self.redis_error: str | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.sub_title = self._provider_text()
        self._notes()
        self.detect_read_only()
        self.check_health()
        self.set_interval(HEALTH_EVERY_S, self.check_health)
        self.call_after_refresh(self._freeze_startup_heap)

    def _freeze_startup_heap(self) -> None:
        # Everything alive once the first screen is up (modules, styles, widgets) lives as long as the console.
        # Moved out of the collector's sight, a full collection scans only newer objects: it took 70-90 ms on
        # this kind of machine, long enough to delay a key press visibly during a refresh.
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()  # in-process tests run many apps one after the other

    def now(self) -> datetime:
        return self.clock()

    def _notes(self) -> None:
        notes: list[str] = []
        if self.settings.is_sandbox:
            notes.append("SANDBOX provider: nothing is really sent")
        if self.daemon_log:
            notes.append(f"daemon in this process (log: {self.daemon_log}); not for production")
        if self.read_only:
            notes.append("READ-ONLY")
        if self.is_frozen:
            notes.append("refresh frozen (z)")
        self.banner_notes = tuple(notes)

    def watch_read_only(self) -> None:
        self._notes()
        self.refresh_bindings()

    def watch_is_frozen(self) -> None:
        self._notes()

    @work(exclusive=True, exit_on_error=False, group="health")
    async def check_health(self) -> None:
        db_error = await health.ping_db()
        redis_error = await health.ping_redis(self.settings)
        errors: list[str] = []
        if db_error:
            errors.append(f"DATABASE UNREACHABLE: {db_error}")
        if redis_error:
            errors.append(f"REDIS UNREACHABLE: {redis_error} (live figures stale; actions still saved)")
        if (db_error is None) != (self.db_error is None) and db_error is None:
            self.notify("the database is reachable again", title="Database")
        if (redis_error is None) != (self.redis_error is None) and redis_error is None:
            self.notify("Redis is reachable again", title="Redis")
        self.db_error, self.redis_error = db_error, redis_error
        self.banner_errors = tuple(errors)
        if redis_error is None and self.REDIS_IN_HEADER:
            # Asked at every check: after a failover the header names the new master.
            redis_text = await health.describe_redis(self.settings)
            if redis_text is not None:
                self.sub_title = f"{self._provider_text()} · {redis_text}"

    def _provider_text(self) -> str:
        return "sandbox" if self.settings.is_sandbox else self.settings.WHATSAPP_PROVIDER

    @work(exclusive=True, exit_on_error=False, group="health")
    async def detect_read_only(self) -> None:
        if self.read_only:
            return
        if await health.database_is_read_only(self.settings):
            self.read_only = True
            self.notify(
                "this database role cannot change blasts: the console is read-only",
                title="Read-only",
                severity="warning",
            )

    # --- errors --------------------------------------------------------------------------------------------

    def show_error(self, error: BaseException | None) -> None:
        title, message = error_text(error)
        log.info("action failed: %s: %s", title, message)
        self.notify(message, title=title, severity="error", timeout=8)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group != "health":
            self.show_error(event.worker.error)

    # --- read-only -----------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_help":  # escape belongs to the screen unless the keys panel is open
            return bool(self.screen.query("HelpPanel"))
        return not (action in MUTATING_ACTIONS and self.read_only)

    def refuse_if_read_only(self) -> bool:
        """True (and a notification) when a mutating action must be refused: the one read-only check."""
        if self.read_only:
            self.notify(
                "this console is read-only; the action was refused", title="Read-only", severity="error"
            )
            return True
        return False

    # --- global actions ------------------------------------------------------------------------------------

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_close_help(self) -> None:
        self.action_hide_help_panel()

    def action_show_help_panel(self) -> None:
        super().action_show_help_panel()
        self.refresh_bindings()  # escape now closes the panel

    def action_hide_help_panel(self) -> None:
        super().action_hide_help_panel()
        self.refresh_bindings()

    def action_toggle_freeze(self) -> None:
        self.is_frozen = not self.is_frozen

    def action_stop_all(self) -> None:
        if self.refuse_if_read_only():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_all_worker()

        self.push_screen(
            ConfirmModal(
                "EMERGENCY STOP",
                "Pause every SCHEDULED and PROCESSING blast now. In-flight requests finish; nothing else is "
                "sent "
                "until each blast is resumed (or `resume all`).",
                confirm_label="Stop all sending",
                typed=STOP_WORD,
            ),
            answered,
        )

    @work(exclusive=True, exit_on_error=False, group="action")
    async def stop_all_worker(self) -> None:
        paused = await blast_actions.pause_all(settings=self.settings)
        self.notify(
            f"{plural(len(paused), 'blast')} paused"
            + (f": {', '.join(map(str, paused[:10]))}" if paused else ""),
            title="Emergency stop",
            severity="warning",
            timeout=10,
        )

    def action_resume_all(self) -> None:
        if self.refuse_if_read_only():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.resume_all_worker()

        self.push_screen(
            ConfirmModal(
                "Resume all", "Resume every blast paused by the emergency stop?", confirm_label="Resume all"
            ),
            answered,
        )

    @work(exclusive=True, exit_on_error=False, group="action")
    async def resume_all_worker(self) -> None:
        resumed = await blast_actions.resume_all(settings=self.settings)
        self.notify(f"{plural(len(resumed), 'blast')} resumed", title="Resume all")

    def open_blast_form(self, blast_id: int | None = None) -> None:
        from console.screens.blast_form import BlastFormScreen

        self.push_screen(BlastFormScreen())

    def open_test_send(self) -> None:
        from console.modals.test_send import TestSendModal

        self.push_screen(TestSendModal())

    def action_sync_templates(self) -> None:
        if self.refuse_if_read_only():
            return
        self.sync_templates_worker()

    @work(exclusive=True, exit_on_error=False, group="action")
    async def sync_templates_worker(self) -> None:
        from shared.services.messaging import provider_session
        from shared.services.template_sync import sync_templates

        self.notify("syncing templates with Meta …", title="Templates", timeout=3)
        async with provider_session(self.settings) as provider:
            report = await sync_templates(self.settings, provider)
        if report.failed:
            self.notify(report.failed, title="Template sync failed", severity="error", timeout=10)
            return
        changes = [
            f"{c.name} ({c.language}) {c.old.value if c.old else 'new'} → {c.new.value}"
            for c in [*report.created, *report.changed]
        ]
        self.notify(
            f"{plural(report.listed, 'template')}, {len(changes)} changed"
            + (": " + "; ".join(changes[:5]) if changes else ""),
            title="Templates synced",
        )
        for screen in self.screen_stack:
            reload = getattr(screen, "reload", None)
            if callable(reload):
                reload()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Dashboard", "Daemons, queues and rates (1)", lambda: self.switch_mode("dashboard")
        )
        yield SystemCommand("Blasts", "Every blast (2)", lambda: self.switch_mode("blasts"))
        yield SystemCommand("Templates", "Message templates (3)", lambda: self.switch_mode("templates"))
        yield SystemCommand("Jobs", "The daemons' recent jobs (4)", lambda: self.switch_mode("jobs"))
        yield SystemCommand(
            "Suppression list", "Numbers never sent to (5)", lambda: self.switch_mode("suppression")
        )
        yield SystemCommand(
            "Search a phone number", "Across all blasts (6)", lambda: self.switch_mode("search")
        )
        yield SystemCommand("API tokens", "The HTTP API's tokens (7)", lambda: self.switch_mode("tokens"))
        yield SystemCommand(
            "Senders", "The numbers blasts send from (8)", lambda: self.switch_mode("senders")
        )
        yield SystemCommand(
            "Freeze / unfreeze refresh", "Stop the live updates (z)", self.action_toggle_freeze
        )
        if not self.read_only:
            yield SystemCommand("New blast", "Create a blast from a CSV (n)", self.open_blast_form)
            yield SystemCommand("Test send", "One template message to one number (t)", self.open_test_send)
            yield SystemCommand(
                "Sync templates", "Ask Meta for every template's status (s)", self.action_sync_templates
            )
            yield SystemCommand(
                "EMERGENCY STOP", "Pause all sending, behind a typed confirmation (X)", self.action_stop_all
            )
            yield SystemCommand(
                "Resume all", "Resume blasts paused by the emergency stop", self.action_resume_all
            )


def build_app(
    settings: Settings, *, read_only: bool = False, clock: Clock | None = None, daemon_log: str | None = None
) -> BlastConsole:
    """The console as production runs it (tests pass a frozen clock)."""
    return BlastConsole(settings, read_only=read_only, clock=clock, daemon_log=daemon_log)
