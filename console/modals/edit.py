"""Provides the edit/reschedule dialog of one blast: name, send time and valid-until as text, and for a DRAFT or
SCHEDULED blast a new recipients file, previewed like the create form's (rendered rows, rejected rows, estimate)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label

from console.format import example_send_time
from console.widgets.csv_preview import CsvPreviewBox, PreviewReady
from console.widgets.path_suggester import PathSuggester


@dataclass(frozen=True)
class EditRequest:
    name: str | None
    send_at: str | None
    valid_until: str | None
    #: A recipients file replacing every recipient (DRAFT/SCHEDULED only), or None to keep them.
    recipients: str | None = None
    #: A DRAFT's new quiet hours ("21:00-08:00" or "off"), or None to keep them.
    quiet_hours: str | None = None
    #: A DRAFT: schedule it at this send time (as typed) after the other changes.
    schedule_at: str | None = None


class EditBlastModal(ModalScreen[EditRequest | None]):
    """Edit a DRAFT/SCHEDULED blast's name, times and recipients, or only reschedule a PAUSED one."""

    DEFAULT_CSS = """
    EditBlastModal { align: center middle; }
    EditBlastModal > VerticalScroll { width: 80; max-width: 95%; height: auto; max-height: 95%;
                                      border: thick $accent; background: $surface; padding: 1 2; }
    EditBlastModal .title { text-style: bold; }
    EditBlastModal Input { margin-bottom: 1; }
    EditBlastModal #edit-preview { display: none; margin-bottom: 1; }
    EditBlastModal #edit-preview.-shown { display: block; }
    EditBlastModal Horizontal { height: auto; align-horizontal: right; }
    EditBlastModal Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without changing anything", id="edit.cancel"),
        Binding("ctrl+s", "save", "Save", tooltip="Apply the changes", id="edit.save"),
    ]

    def __init__(
        self,
        *,
        blast_id: int,
        name: str,
        send_at: str,
        zone: str,
        name_editable: bool,
        template: tuple[str, str] | None = None,
        example: str | None = None,
        is_draft: bool = False,
    ) -> None:
        """The dialog for one blast.

        Args:
            template: (name, language) the blast sends; a new recipients file is previewed against it.
            example: a send time shown in the hint (default: tomorrow 09:00 in `zone`).
            is_draft: a DRAFT: its quiet hours can be changed, and it can be scheduled.
        """
        super().__init__()
        self.blast_id = blast_id
        self.initial_name = name
        self.initial_send_at = send_at
        self.zone = zone
        self.name_editable = name_editable
        self.template = template
        self.is_draft = is_draft
        self.example = example or example_send_time(datetime.now(UTC), ZoneInfo(zone))

    def compose(self) -> ComposeResult:
        # The whole dialog scrolls: a preview can be taller than a small terminal.
        with VerticalScroll(can_focus=False):
            verb = "Edit" if self.name_editable else "Reschedule"
            yield Label(f"{verb} blast {self.blast_id}", classes="title")
            if self.name_editable:
                yield Label("Name")
                yield Input(self.initial_name, id="name")
            yield Label(f"Send at ({self.zone}; 'now', '+10m' or {self.example})")
            yield Input(self.initial_send_at, id="send_at")
            if self.name_editable:
                yield Label("Valid until (optional)")
                yield Input("", id="valid_until")
                yield Label("New recipients CSV (optional, replaces them all; Enter previews)")
                yield Input(
                    "",
                    id="recipients",
                    placeholder="/path/to/recipients.csv (→ completes)",
                    suggester=PathSuggester(),
                )
                yield CsvPreviewBox(id="edit-preview")
            if self.is_draft:
                yield Label(
                    "Quiet hours (HH:MM-HH:MM in each recipient's local time, or off; applied when scheduled)"
                )
                yield Input("", id="quiet_hours", placeholder="unchanged")
                yield Checkbox("Schedule it at this send time", id="schedule")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Save", variant="primary", id="save")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "recipients" and event.value.strip():
            self.action_preview()
        else:
            self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_preview(self) -> None:
        path = self.query_one("#recipients", Input).value.strip()
        if not path or self.template is None:
            return
        box = self.query_one(CsvPreviewBox)
        box.add_class("-shown")
        box.show_reading()
        self.read_csv(path)

    @work(exclusive=True, exit_on_error=False, group="edit-preview")
    async def read_csv(self, path: str) -> None:
        from console.screens.blast_form import read_preview  # the create form's reader, shared

        settings = getattr(self.app, "settings", None)
        assert settings is not None and self.template is not None
        self.post_message(await read_preview(settings, self.template[0], self.template[1], path))

    def on_preview_ready(self, message: PreviewReady) -> None:
        box = self.query_one(CsvPreviewBox)
        box.show_result(message)
        box.scroll_visible(animate=False)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        send_at = self.query_one("#send_at", Input).value.strip()
        name = self.query_one("#name", Input).value.strip() if self.name_editable else None
        until = self.query_one("#valid_until", Input).value.strip() if self.name_editable else ""
        path = self.query_one("#recipients", Input).value.strip() if self.name_editable else ""
        quiet = self.query_one("#quiet_hours", Input).value.strip() if self.is_draft else ""
        schedule = self.is_draft and self.query_one("#schedule", Checkbox).value
        self.dismiss(
            EditRequest(
                name=name if name and name != self.initial_name else None,
                send_at=send_at if send_at and send_at != self.initial_send_at and not schedule else None,
                valid_until=until or None,
                recipients=path or None,
                quiet_hours=quiet or None,
                schedule_at=(send_at or "now") if schedule else None,
            )
        )
