"""Provides the phone search screen: one number across all blasts — what was sent to it, when, what
happened."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Static

from console.format import local_time
from console.screens.base import BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from console.widgets.status_badge import status_text
from shared.services import recipients
from shared.text import plural


@dataclass
class SearchDone(Message):
    phone: str
    hits: list[recipients.PhoneHit]


class SearchScreen(BaseScreen):
    """Type a number, press Enter; Enter on a row opens that blast."""

    BINDINGS = [
        Binding("slash", "focus_search", "Search", tooltip="Type a phone number", id="search.focus"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.phone = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield Input(placeholder="phone number, e.g. +62 812 3456 7890 (Enter)", id="phone-input")
        yield DataTable(id="search-table", cursor_type="row", zebra_stripes=True)
        yield Static("type a number and press Enter", id="search-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "Blast", "Name", "Template", "Status", "Sent at", "Delivered", "Read", "Error", "WAMID"
        )
        self.query_one("#phone-input", Input).focus()

    def action_focus_search(self) -> None:
        self.query_one("#phone-input", Input).focus()

    @on(Input.Submitted, "#phone-input")
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.search(event.value.strip())

    @work(exclusive=True, exit_on_error=False, group="action")
    async def search(self, phone: str) -> None:
        hits = await recipients.search_phone(phone, settings=self.console.settings)
        self.post_message(SearchDone(phone, hits))

    def on_search_done(self, m: SearchDone) -> None:
        zone = self.console.settings.zone
        table = self.query_one(DataTable)
        table.clear()
        for h in m.hits:
            error = f"{h.error_code or ''} {h.error_text or ''}".strip()
            table.add_row(
                str(h.blast_id),
                h.blast_name,
                f"{h.template}/{h.language}",
                status_text(h.status.value),
                local_time(h.sent_at, zone, seconds=True),
                local_time(h.delivered_at, zone, seconds=True),
                local_time(h.read_at, zone, seconds=True),
                Text(error, style="red"),
                h.wamid or "",
                key=f"{h.blast_id}",
            )
        self.query_one("#search-status", Static).update(
            f"{plural(len(m.hits), 'blast')} included {m.phone} · times in {self.console.settings.BLAST_TIMEZONE}"
            + (" · Enter opens the blast" if m.hits else "")
        )
        if m.hits:
            table.focus()

    @on(DataTable.RowSelected, "#search-table")
    def open_blast(self, event: DataTable.RowSelected) -> None:
        from console.screens.blast_detail import BlastDetailScreen

        if event.row_key.value is not None:
            self.app.push_screen(BlastDetailScreen(int(str(event.row_key.value))))
