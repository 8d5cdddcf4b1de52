"""Provides the retry confirmation: re-queue the FAILED recipients, and optionally the UNKNOWN ones."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, Static


class RetryModal(ModalScreen[bool | None]):
    """Dismisses with None (no), or include_unknown (yes)."""

    DEFAULT_CSS = """
    RetryModal { align: center middle; }
    RetryModal > Vertical { width: 70; max-width: 95%; height: auto; border: thick $warning;
                            background: $surface; padding: 1 2; }
    RetryModal .title { text-style: bold; margin-bottom: 1; }
    RetryModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    RetryModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape,n", "no", "Cancel", tooltip="Do nothing", id="retry.no"),
        Binding("y", "yes", "Retry", tooltip="Re-queue the recipients", id="retry.yes"),
        Binding(
            "u",
            "toggle_unknown",
            "Include UNKNOWN",
            tooltip="Also resend UNKNOWN outcomes",
            id="retry.unknown",
        ),
    ]

    def __init__(self, *, title: str, failed: int, unknown: int) -> None:
        super().__init__()
        self.title_text = title
        self.failed = failed
        self.unknown = unknown

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(
                f"Re-queue {self.failed:,} FAILED recipients (opted-out numbers and a marketing cap hit in "
                "the "
                "last 24 h stay FAILED)."
            )
            yield Checkbox(
                f"Also resend the {self.unknown:,} UNKNOWN ones (they may have received it already)",
                value=False,
                id="unknown",
                disabled=self.unknown == 0,
            )
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Retry", variant="warning", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "yes":
            self.action_yes()
        else:
            self.action_no()

    def action_toggle_unknown(self) -> None:
        box = self.query_one("#unknown", Checkbox)
        if not box.disabled:
            box.toggle()

    def action_yes(self) -> None:
        self.dismiss(self.query_one("#unknown", Checkbox).value)

    def action_no(self) -> None:
        self.dismiss(None)
