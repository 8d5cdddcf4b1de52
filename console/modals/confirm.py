"""Provides the yes/no confirmation asked before every destructive action, optionally behind a typed word."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmModal(ModalScreen[bool]):
    """Ask a question; dismiss with True only on an explicit yes (or the exact typed word)."""

    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical {
        width: 64; max-width: 95%; height: auto; border: thick $error; background: $surface; padding: 1 2;
    }
    ConfirmModal .title { text-style: bold; margin-bottom: 1; }
    ConfirmModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    ConfirmModal Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("escape", "answer(False)", "Cancel", tooltip="Do nothing", id="confirm.no"),
        Binding("n", "answer(False)", "No", show=False, tooltip="Do nothing", id="confirm.n"),
        Binding("y", "yes", "Yes", tooltip="Go ahead", id="confirm.yes"),
    ]

    def __init__(
        self, title: str, question: str, *, confirm_label: str = "Yes", typed: str | None = None
    ) -> None:
        """
        Args:
            title: short heading, e.g. "Cancel blast 42".
            question: what will happen, with the concrete values.
            confirm_label: the button text.
            typed: when given, the operator must type this word to confirm (emergency stop).
        """
        super().__init__()
        self.title_text = title
        self.question = question
        self.confirm_label = confirm_label
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.question)
            if self.typed:
                yield Label(f"Type {self.typed} and press Enter to confirm:")
                yield Input(placeholder=self.typed, id="typed")
            with Horizontal():
                yield Button("No", id="no")
                yield Button(self.confirm_label, variant="error", id="yes", disabled=self.typed is not None)

    def on_mount(self) -> None:
        if self.typed:
            self.query_one("#typed", Input).focus()
        else:
            self.query_one("#no", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = event.value.strip() != self.typed

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.typed:
            self.dismiss(True)
        else:
            self.notify(f"type {self.typed} exactly to confirm", severity="warning")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(event.button.id == "yes")

    def action_yes(self) -> None:
        if self.typed is None:
            self.dismiss(True)

    def action_answer(self, value: bool) -> None:
        if value and self.typed is not None:
            value = self.query_one("#typed", Input).value.strip() == self.typed
        self.dismiss(value)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Behind a typed word, "y" is just a letter of it.
        return not (self.typed is not None and action == "yes")
