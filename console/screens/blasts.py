"""Provides the blasts screen: a live, paged table of blasts with filters, sort, marks and the operator
actions."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Static

from console.screens.base import REFRESH_GROUP
from console.screens.blast_actions import BLAST_ACTION_BINDINGS, BlastActionScreen, BlastView
from console.widgets.banner import Banner
from console.widgets.blast_table import BlastTable
from console.widgets.footer import ConsoleFooter
from shared.services import blast_reads
from shared.status import BlastStatus

B = BlastStatus
PAGE_SIZE = 200
STATUS_FILTERS: tuple[tuple[str, tuple[BlastStatus, ...]], ...] = (
    ("all", ()),
    ("active", (B.SCHEDULED, B.PROCESSING, B.PAUSED)),
    ("SCHEDULED", (B.SCHEDULED,)),
    ("PROCESSING", (B.PROCESSING,)),
    ("PAUSED", (B.PAUSED,)),
    ("COMPLETED", (B.COMPLETED,)),
    ("FAILED", (B.FAILED,)),
    ("CANCELLED", (B.CANCELLED,)),
    ("DRAFT", (B.DRAFT,)),
)
SORTS: tuple[tuple[str, str], ...] = (
    ("newest", "-id"),
    ("send time", "-send_at"),
    ("name", "name"),
    ("status", "status"),
)


@dataclass
class BlastsLoaded(Message):
    items: list[blast_reads.BlastSummary]
    total: int


class BlastsScreen(BlastActionScreen):
    """Every blast, newest first, refreshed about once a second."""

    BINDINGS = [
        Binding(
            "slash",
            "filter_text",
            "Filter",
            tooltip="Filter by text in the blast or template name",
            id="blasts.filter",
        ),
        Binding("f", "cycle_status", "Status", tooltip="Cycle the status filter", id="blasts.status"),
        Binding("o", "cycle_sort", "Sort", tooltip="Cycle the sort order", id="blasts.sort"),
        Binding("n", "new_blast", "New", tooltip="Create a blast from a CSV", id="blasts.new"),
        *BLAST_ACTION_BINDINGS,
        Binding(
            "right_square_bracket",
            "page(1)",
            "Next page",
            show=False,
            tooltip="Next page of blasts",
            id="blasts.next",
        ),
        Binding(
            "left_square_bracket",
            "page(-1)",
            "Prev page",
            show=False,
            tooltip="Previous page of blasts",
            id="blasts.prev",
        ),
        Binding("u", "clear_marks", "Unmark", show=False, tooltip="Clear every mark", id="blasts.unmark"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_index = 0
        self.sort_index = 0
        self.text = ""
        self.page = 0
        self.total = 0
        self.marks: set[int] = set()
        self.items: dict[int, blast_reads.BlastSummary] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield Input(
            placeholder="filter: text in the blast or template name (Enter applies, Esc clears)",
            id="blast-filter",
            classes="filter",
        )
        yield BlastTable(id="blast-table")
        yield Static("", id="blasts-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(BlastTable).focus()
        super().on_mount()

    # --- loading -------------------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self.load_blasts()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_blasts(self) -> None:
        statuses = list(STATUS_FILTERS[self.status_index][1])
        text = self.text or None
        items = await blast_reads.list_blasts(
            statuses=statuses,
            text=text,
            limit=PAGE_SIZE,
            offset=self.page * PAGE_SIZE,
            order=SORTS[self.sort_index][1],
        )
        total = await blast_reads.count_blasts(statuses=statuses, text=text)
        self.post_message(BlastsLoaded(items, total))

    def on_blasts_loaded(self, message: BlastsLoaded) -> None:
        self.items = {b.id: b for b in message.items}
        self.total = message.total
        self.query_one(BlastTable).show(message.items, marks=self.marks, zone=self.console.settings.zone)
        self._status_line()

    def _status_line(self) -> None:
        first = self.page * PAGE_SIZE + (1 if self.items else 0)
        last = self.page * PAGE_SIZE + len(self.items)
        parts = [
            f"blasts {first:,}-{last:,} of {self.total:,}",
            f"status: {STATUS_FILTERS[self.status_index][0]}",
            f"sort: {SORTS[self.sort_index][0]}",
            f"times in {self.console.settings.BLAST_TIMEZONE}",
        ]
        if self.text:
            parts.append(f"filter: {self.text!r}")
        if self.marks:
            parts.append(f"{len(self.marks)} marked")
        self.query_one("#blasts-status", Static).update(" · ".join(parts))

    def reload(self) -> None:
        self.load_blasts()

    # --- navigation ----------------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#blast-table")
    def open_blast(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            from console.screens.blast_detail import BlastDetailScreen

            self.app.push_screen(BlastDetailScreen(int(str(event.row_key.value))))

    def action_filter_text(self) -> None:
        box = self.query_one("#blast-filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#blast-filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        self.text = event.value.strip()
        self.page = 0
        if not self.text:
            event.input.remove_class("-shown")
        self.query_one(BlastTable).focus()
        self.reload()

    def key_escape(self) -> None:
        box = self.query_one("#blast-filter", Input)
        if box.has_focus or self.text:
            box.value = ""
            box.remove_class("-shown")
            self.text = ""
            self.page = 0
            self.query_one(BlastTable).focus()
            self.reload()

    def action_cycle_status(self) -> None:
        self.status_index = (self.status_index + 1) % len(STATUS_FILTERS)
        self.page = 0
        self.reload()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.page = 0
        self.reload()

    def action_page(self, delta: int) -> None:
        pages = max(1, -(-self.total // PAGE_SIZE))
        self.page = min(max(0, self.page + delta), pages - 1)
        self.reload()

    @on(BlastTable.MarkToggled)
    def toggle_mark(self, message: BlastTable.MarkToggled) -> None:
        self.marks.symmetric_difference_update({message.blast_id})
        table = self.query_one(BlastTable)
        table.show(list(self.items.values()), marks=self.marks, zone=self.console.settings.zone)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)
        self._status_line()

    def action_clear_marks(self) -> None:
        self.marks.clear()
        self.query_one(BlastTable).show(
            list(self.items.values()), marks=self.marks, zone=self.console.settings.zone
        )
        self._status_line()

    # --- what the actions act on ---------------------------------------------------------------------------

    def targets(self) -> list[int]:
        if self.marks:
            return sorted(self.marks)
        current = self.query_one(BlastTable).current_blast_id
        return [] if current is None else [current]

    def blast_view(self, blast_id: int) -> BlastView | None:
        return self.items.get(blast_id)

    def actions_done(self, ids: list[int]) -> None:
        self.marks.difference_update(ids)
        self.reload()

    def action_new_blast(self) -> None:
        if self.refuse_if_read_only():
            return
        self.console.open_blast_form()
