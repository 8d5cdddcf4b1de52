"""Provides the edit/reschedule dialog of one blast: name and send time (and valid-until) as text."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


@dataclass(frozen=True)
class EditRequest:
    name: str | None
    send_at: str | None
    valid_until: str | None


class EditBlastModal(ModalScreen[EditRequest | None]):
    """Edit a DRAFT/SCHEDULED blast's name and times, or only reschedule a PAUSED one."""

    DEFAULT_CSS = """
    EditBlastModal { align: center middle; }
    EditBlastModal > Vertical { width: 70; max-width: 95%; height: auto; border: thick $accent;
                                background: $surface; padding: 1 2; }
    EditBlastModal .title { text-style: bold; }
    EditBlastModal Input { margin-bottom: 1; }
    EditBlastModal Horizontal { height: auto; align-horizontal: right; }
    EditBlastModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without changing anything", id="edit.cancel"),
        Binding("ctrl+s", "save", "Save", tooltip="Apply the changes", id="edit.save"),
    ]

    def __init__(self, *, blast_id: int, name: str, send_at: str, zone: str, name_editable: bool) -> None:
        super().__init__()
        self.blast_id = blast_id
        self.initial_name = name
        self.initial_send_at = send_at
        self.zone = zone
        self.name_editable = name_editable

    def compose(self) -> ComposeResult:
        with Vertical():
            verb = "Edit" if self.name_editable else "Reschedule"
            yield Label(f"{verb} blast {self.blast_id}", classes="title")
            if self.name_editable:
                yield Label("Name")
                yield Input(self.initial_name, id="name")
            yield Label(f"Send at ({self.zone}; 'now', '+10m' or 2025-06-01 09:00)")
            yield Input(self.initial_send_at, id="send_at")
            if self.name_editable:
                yield Label("Valid until (optional)")
                yield Input("", id="valid_until")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Save", variant="primary", id="save")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        send_at = self.query_one("#send_at", Input).value.strip()
        name = self.query_one("#name", Input).value.strip() if self.name_editable else None
        until = self.query_one("#valid_until", Input).value.strip() if self.name_editable else ""
        self.dismiss(
            EditRequest(
                name=name if name and name != self.initial_name else None,
                send_at=send_at if send_at and send_at != self.initial_send_at else None,
                valid_until=until or None,
            )
        )
