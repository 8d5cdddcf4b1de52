"""Provides the dialog that shows a new API token, the only time it is ever shown."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class TokenCreatedModal(ModalScreen[None]):
    """Show a new token once, with a button that copies it (OSC 52, also over SSH where the terminal allows)."""

    DEFAULT_CSS = """
    TokenCreatedModal { align: center middle; }
    TokenCreatedModal > Vertical { width: 80; max-width: 95%; height: auto; border: thick $warning;
                                   background: $surface; padding: 1 2; }
    TokenCreatedModal .title { text-style: bold; margin-bottom: 1; }
    TokenCreatedModal #token-value { background: $boost; padding: 0 1; margin: 1 0; }
    TokenCreatedModal Horizontal { height: auto; align-horizontal: right; }
    TokenCreatedModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close: the token is not shown again", id="token.close"),
        Binding("c", "copy", "Copy", tooltip="Copy the token to the clipboard", id="token.copy"),
    ]

    def __init__(self, name: str, role: str, token: str) -> None:
        super().__init__()
        self.token_name = name
        self.role = role
        self.token = token

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"API token {self.token_name} ({self.role})", classes="title")
            yield Static(
                "Store it now in the client's secrets: it is not shown again (only its hash is kept)."
            )
            yield Static(self.token, id="token-value")
            with Horizontal():
                yield Button("Copy", id="copy")
                yield Button("Done", variant="primary", id="done")

    def on_mount(self) -> None:
        self.query_one("#done", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.action_close()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.token)
        self.notify("token copied to the clipboard", title="Copied")

    def action_close(self) -> None:
        self.dismiss(None)
