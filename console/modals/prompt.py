"""Provides a small form dialog of text fields (add a number, import a file, …)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class PromptModal(ModalScreen[dict[str, str] | None]):
    """Ask for a few text values; dismisses with {key: value} or None."""

    DEFAULT_CSS = """
    PromptModal { align: center middle; }
    PromptModal > Vertical { width: 70; max-width: 95%; height: auto; border: thick $accent;
                             background: $surface; padding: 1 2; }
    PromptModal .title { text-style: bold; }
    PromptModal Horizontal { height: auto; align-horizontal: right; }
    PromptModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything", id="prompt.cancel")
    ]

    def __init__(self, title: str, fields: list[tuple[str, str, str]]) -> None:
        """
        Args:
            title: what the dialog does.
            fields: (key, label, initial value) of each input.
        """
        super().__init__()
        self.title_text = title
        self.fields = fields

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            for key, label, value in self.fields:
                yield Label(label)
                yield Input(value, id=f"field-{key}")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("OK", variant="primary", id="ok")

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#field-{key}", Input).value.strip() for key, _, _ in self.fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
        else:
            self.dismiss(self.values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.values() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
