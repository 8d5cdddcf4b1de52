"""Provides the suppression list screen: view (paged), search, add, remove, import a CSV of numbers."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Static

from console.format import local_time
from console.modals.confirm import ConfirmModal
from console.modals.prompt import PromptModal
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from shared.actors import current_actor
from shared.services import suppression

PAGE_SIZE = 100


@dataclass
class SuppressionLoaded(Message):
    page: suppression.SuppressionPage


class SuppressionScreen(BaseScreen):
    """Numbers that are never sent to (opted out, or added by an operator)."""

    REFRESH_S = 5.0
    BINDINGS = [
        Binding("slash", "search", "Search", tooltip="Search numbers or reasons", id="suppression.search"),
        Binding("a", "add_suppression", "Add", tooltip="Add a number to the list", id="suppression.add"),
        Binding(
            "d",
            "remove_suppression",
            "Remove",
            tooltip="Take the number off the list",
            id="suppression.remove",
        ),
        Binding(
            "i", "import_suppression", "Import", tooltip="Import a CSV of numbers", id="suppression.import"
        ),
        Binding(
            "right_square_bracket",
            "page(1)",
            "Next page",
            show=False,
            tooltip="Next page",
            id="suppression.next",
        ),
        Binding(
            "left_square_bracket",
            "page(-1)",
            "Prev page",
            show=False,
            tooltip="Previous page",
            id="suppression.prev",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.page_offset = 0
        self.total = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield Input(
            placeholder="search: part of a number or reason (Enter)",
            id="suppression-filter",
            classes="filter",
        )
        yield DataTable(id="suppression-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="suppression-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("Phone", "Source", "Reason", "Since")
        self.query_one(DataTable).focus()
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_page()

    def reload(self) -> None:
        self.load_page()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_page(self) -> None:
        page = await suppression.list_suppressions(
            text=self.text or None, limit=PAGE_SIZE, offset=self.page_offset
        )
        self.post_message(SuppressionLoaded(page))

    def on_suppression_loaded(self, m: SuppressionLoaded) -> None:
        zone = self.console.settings.zone
        self.total = m.page.total
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for e in m.page.entries:
            table.add_row(e.phone, e.source, e.reason, local_time(e.created_at, zone), key=e.phone)
        if m.page.entries:
            table.move_cursor(row=min(row, len(m.page.entries) - 1), animate=False)
        last = self.page_offset + len(m.page.entries)
        self.query_one("#suppression-status", Static).update(
            f"{self.page_offset + (1 if m.page.entries else 0):,}-{last:,} of {self.total:,} suppressed "
            "numbers" + (f" · search {self.text!r}" if self.text else "")
        )

    def action_search(self) -> None:
        box = self.query_one("#suppression-filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#suppression-filter")
    def apply_search(self, event: Input.Submitted) -> None:
        self.text = event.value.strip()
        self.page_offset = 0
        if not self.text:
            event.input.remove_class("-shown")
        self.query_one(DataTable).focus()
        self.reload()

    def action_page(self, delta: int) -> None:
        self.page_offset = min(
            max(0, self.page_offset + delta * PAGE_SIZE), max(0, self.total - 1) // PAGE_SIZE * PAGE_SIZE
        )
        self.reload()

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if value is None else str(value)

    def action_add_suppression(self) -> None:
        if self.refuse_if_read_only():
            return

        def answered(values: dict[str, str] | None) -> None:
            if values and values.get("phone"):
                self.add_worker(values["phone"], values.get("reason", ""))

        self.app.push_screen(
            PromptModal(
                "Add to the suppression list", [("phone", "Phone number", ""), ("reason", "Reason", "")]
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def add_worker(self, phone: str, reason: str) -> None:
        entry = await suppression.add(
            phone,
            reason=reason,
            actor=current_actor(),
            default_region=self.console.settings.BLAST_DEFAULT_REGION,
        )
        self.notify(f"{entry.phone} will not be sent to", title="Suppressed")
        self.reload()

    def action_remove_suppression(self) -> None:
        if self.refuse_if_read_only():
            return
        phone = self._current()
        if phone is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.remove_worker(phone)

        self.app.push_screen(
            ConfirmModal(
                "Remove",
                f"Take {phone} off the suppression list? Future blasts may send to it again.",
                confirm_label="Remove",
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def remove_worker(self, phone: str) -> None:
        await suppression.remove(phone, actor=current_actor())
        self.notify(f"{phone} removed from the suppression list", title="Removed")
        self.reload()

    def action_import_suppression(self) -> None:
        if self.refuse_if_read_only():
            return

        def answered(values: dict[str, str] | None) -> None:
            if values and values.get("path"):
                self.import_worker(values["path"], values.get("reason", "") or "imported")

        self.app.push_screen(
            PromptModal(
                "Import numbers",
                [("path", "CSV file (phone column or one per line)", ""), ("reason", "Reason", "imported")],
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def import_worker(self, path: str, reason: str) -> None:
        result = await suppression.import_csv(
            path,
            actor=current_actor(),
            reason=reason,
            default_region=self.console.settings.BLAST_DEFAULT_REGION,
        )
        text = (
            f"{result.added:,} added, {result.already:,} already listed, {result.rejected_total:,} rejected"
        )
        if result.rejected:
            row, value, why = result.rejected[0]
            text += f" (row {row}: {value!r}: {why})"
        self.notify(text, title="Imported", timeout=8)
        self.reload()
