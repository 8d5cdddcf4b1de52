"""Provides the suppression list screen: view (paged), search, add, remove, import a CSV of numbers."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from console.format import local_time
from console.modals.confirm import ConfirmModal
from console.screens.table_screen import TableScreen
from console.widgets.table_rows import Rows
from shared.actors import current_actor
from shared.services import suppression

PAGE_SIZE = 100


class SuppressionScreen(TableScreen[suppression.SuppressionPage]):
    """Numbers that are never sent to (opted out, or added by an operator)."""

    REFRESH_S = 5.0
    TABLE_ID = "suppression-table"
    STATUS_ID = "suppression-status"
    COLUMNS = ("Phone", "Source", "Reason", "Since")
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

    def compose_above_table(self) -> ComposeResult:
        yield Input(
            placeholder="search: part of a number or reason (Enter)",
            id="suppression-filter",
            classes="filter",
        )

    async def fetch(self) -> suppression.SuppressionPage:
        page = await suppression.list_suppressions(
            text=self.text or None, limit=PAGE_SIZE, offset=self.page_offset
        )
        self.total = page.total
        return page

    def rows_of(self, data: suppression.SuppressionPage) -> Rows:
        zone = self.console.settings.zone
        return [
            (e.phone, (e.phone, e.source, e.reason, local_time(e.created_at, zone))) for e in data.entries
        ]

    def status_of(self, data: suppression.SuppressionPage) -> str:
        last = self.page_offset + len(data.entries)
        return (
            f"{self.page_offset + (1 if data.entries else 0):,}-{last:,} of {data.total:,} suppressed "
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
        self.table.focus()
        self.reload()

    def action_page(self, delta: int) -> None:
        self.page_offset = min(
            max(0, self.page_offset + delta * PAGE_SIZE), max(0, self.total - 1) // PAGE_SIZE * PAGE_SIZE
        )
        self.reload()

    def action_add_suppression(self) -> None:
        self.prompt(
            "Add to the suppression list",
            [("phone", "Phone number", ""), ("reason", "Reason", "")],
            required="phone",
            then=self.add_suppression,
        )

    async def add_suppression(self, values: dict[str, str]) -> None:
        entry = await suppression.add(
            values["phone"],
            reason=values.get("reason", ""),
            actor=current_actor(),
            default_region=self.console.settings.BLAST_DEFAULT_REGION,
        )
        self.notify(f"{entry.phone} will not be sent to", title="Suppressed")

    def action_remove_suppression(self) -> None:
        self.confirm_remove()

    def removal_question(self, key: str) -> ConfirmModal:
        return ConfirmModal(
            "Remove",
            f"Take {key} off the suppression list? Future blasts may send to it again.",
            confirm_label="Remove",
        )

    async def remove_row(self, key: str) -> None:
        await suppression.remove(key, actor=current_actor())
        self.notify(f"{key} removed from the suppression list", title="Removed")

    def action_import_suppression(self) -> None:
        self.prompt(
            "Import numbers",
            [("path", "CSV file (phone column or one per line)", ""), ("reason", "Reason", "imported")],
            required="path",
            then=self.import_suppression,
        )

    async def import_suppression(self, values: dict[str, str]) -> None:
        result = await suppression.import_csv(
            values["path"],
            actor=current_actor(),
            reason=values.get("reason", "") or "imported",
            default_region=self.console.settings.BLAST_DEFAULT_REGION,
        )
        text = (
            f"{result.added:,} added, {result.already:,} already listed, {result.rejected_total:,} rejected"
        )
        if result.rejected:
            row, value, why = result.rejected[0]
            text += f" (row {row}: {value!r}: {why})"
        self.notify(text, title="Imported", timeout=8)
