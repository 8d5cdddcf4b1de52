"""Provides the blast detail screen: live counts, rate and ETA; failures grouped by Meta code; the recipients
page by page (filterable by status); the cost (estimate beside the actual); the audit trail. All reads are bounded (counters, keyset pages).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from console.format import local_time
from console.screens.base import REFRESH_GROUP
from console.screens.blast_actions import BLAST_ACTION_BINDINGS, BlastActionScreen, BlastView
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from console.widgets.progress_panel import ProgressPanel
from console.widgets.status_badge import status_text
from console.widgets.table_rows import show_rows
from shared.models import AuditLog
from shared.services import blast_reads, cost_estimate, live, recipients
from shared.status import BlastStatus, RecipientStatus

R = RecipientStatus
RECIPIENT_FILTERS: tuple[tuple[str, tuple[RecipientStatus, ...]], ...] = (
    ("all", ()),
    ("FAILED", (R.FAILED,)),
    ("UNKNOWN", (R.UNKNOWN,)),
    ("PENDING", (R.PENDING,)),
    ("SENT", (R.SENT,)),
    ("DELIVERED", (R.DELIVERED,)),
    ("READ", (R.READ,)),
    ("SKIPPED", (R.SKIPPED,)),
    ("CANCELLED", (R.CANCELLED,)),
)
TABS = ("recipients", "errors", "audit", "cost")
#: Tables composed only when their tab is first shown: pane id -> (table id, columns).
LAZY_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "errors": ("error-table", ("Code", "Count", "Meaning", "Meta's text")),
    "audit": ("audit-table", ("At", "Who", "Action", "Detail")),
}
#: The grouped errors and the audit trail change slowly: reload them every this many refreshes.
SLOW_EVERY = 5


@dataclass
class DetailLoaded(Message):
    detail: blast_reads.BlastDetail
    rate: float
    page: recipients.RecipientPage
    errors: list[recipients.ErrorGroup] | None
    audit: list[AuditLog] | None
    cost: cost_estimate.BlastCost | None = None
    zones: list[blast_reads.ZoneProgress] | None = None
    quiet: blast_reads.QuietHold | None = None


class BlastDetailScreen(BlastActionScreen):
    """One blast, refreshed about once a second."""

    BINDINGS: ClassVar[list[Binding]] = [  # type: ignore[assignment]  # Textual types BINDINGS loosely
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the blasts", id="detail.back"),
        *BLAST_ACTION_BINDINGS,
        Binding(
            "f", "cycle_filter", "Filter", tooltip="Cycle the recipient status filter", id="detail.filter"
        ),
        Binding(
            "right_square_bracket",
            "page(1)",
            "Next page",
            tooltip="Next page of recipients",
            id="detail.next",
        ),
        Binding(
            "left_square_bracket",
            "page(-1)",
            "Prev page",
            tooltip="Previous page of recipients",
            id="detail.prev",
        ),
        Binding("v", "next_tab", "View", tooltip="Recipients, errors by code, audit trail", id="detail.view"),
    ]

    def __init__(self, blast_id: int) -> None:
        super().__init__()
        self.blast_id = blast_id
        self.detail: blast_reads.BlastDetail | None = None
        self.filter_index = 0
        #: after_id of each page shown so far (paging back pops it).
        self.pages: list[int] = [0]
        self.next_after: int | None = None
        self.ticks = 0
        self._head_shown: object = None
        self._status_shown = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield ProgressPanel("loading …", id="progress")
        zones = Static("", id="zones")
        zones.display = False  # shown for local-time blasts only
        yield zones
        quiet = Static("", id="quiet")
        quiet.display = False  # shown for blasts with quiet hours only
        yield quiet
        with TabbedContent(id="detail-tabs"):
            with TabPane("Recipients", id="recipients"):
                yield DataTable(id="recipient-table", cursor_type="row", zebra_stripes=True)
            # The other tabs get their table when first shown (fewer widgets to style while the screen opens).
            yield TabPane("Errors by code", id="errors")
            yield TabPane("Audit", id="audit")
            with TabPane("Cost", id="cost"):
                yield Static("", id="cost-text")
        yield Static("", id="detail-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one("#recipient-table", DataTable).add_columns(
            "Row", "Phone", "Status", "Tries", "Sent at", "Error", "WAMID"
        )
        self.query_one("#recipient-table", DataTable).focus()
        self.sub_title = f"blast {self.blast_id}"
        super().on_mount()

    # --- loading -------------------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self.load_detail()

    def reload(self) -> None:
        self.ticks = 0
        self.load_detail()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_detail(self) -> None:
        # The grouped errors and the audit trail are read only while their tab is shown, and then only every
        # SLOW_EVERY refreshes: opening a big blast costs its counters and one recipient page.
        slow = self.ticks % SLOW_EVERY == 0
        self.ticks += 1
        tab = self.query_one(TabbedContent).active
        detail = await blast_reads.show_blast(self.blast_id)
        page = await recipients.page_recipients(
            self.blast_id,
            statuses=RECIPIENT_FILTERS[self.filter_index][1],
            after_id=self.pages[-1],
            limit=recipients.PAGE_SIZE,
        )
        errors = await recipients.errors_by_code(self.blast_id) if slow and tab == "errors" else None
        audit = await blast_reads.audit_trail(self.blast_id, limit=100) if slow and tab == "audit" else None
        cost = await cost_estimate.blast_cost(self.blast_id) if slow and tab == "cost" else None
        zones = await blast_reads.zone_progress(self.blast_id) if slow and detail.local_time else None
        quiet = await blast_reads.quiet_hold(self.blast_id) if slow else None
        rate = 0.0
        # Redis down: the banner says so; the database view still works.
        with contextlib.suppress(Exception):
            rate = (await live.rates(self.console.settings)).by_blast.get(self.blast_id, 0.0)
        self.post_message(DetailLoaded(detail, rate, page, errors, audit, cost, zones, quiet))

    @on(TabbedContent.TabActivated, "#detail-tabs")
    def tab_shown(self, event: TabbedContent.TabActivated) -> None:
        lazy = LAZY_TABLES.get(event.pane.id or "")
        if lazy is not None and not event.pane.query(DataTable):
            table: DataTable[Any] = DataTable(id=lazy[0], cursor_type="row")
            table.add_columns(*lazy[1])
            event.pane.mount(table)
        if self.is_mounted and self.detail is not None:
            self.reload()

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        settings = self.console.settings
        zone = settings.zone
        self.detail = message.detail
        now = self.console.now()
        head = (message.detail, message.rate, now if message.detail.status == BlastStatus.SCHEDULED else None)
        if head != self._head_shown:  # an unchanged head is not re-laid out every second
            self._head_shown = head
            self.query_one(ProgressPanel).show(
                message.detail, rate=message.rate, limit=settings.BLAST_RATE_LIMIT, zone=zone, now=now
            )
        self.next_after = message.page.next_after_id
        table = self.query_one("#recipient-table", DataTable)
        rows = [
            (
                str(r.id),
                (
                    str(r.row),
                    r.phone,
                    status_text(r.status.value),
                    str(r.attempts),
                    local_time(r.sent_at, zone, seconds=True),
                    Text(f"{r.error_code or ''} {r.error_text or ''}".strip(), style="red"),
                    r.wamid or "",
                ),
            )
            for r in message.page.rows
        ]
        show_rows(table, rows)
        error_tables = self.query("#error-table").results(DataTable)
        if message.errors is not None and (error_table := next(error_tables, None)) is not None:
            show_rows(
                error_table,
                [
                    (
                        str(g.code),
                        (
                            str(g.code if g.code is not None else "-"),
                            f"{g.count:,}",
                            g.meaning,
                            g.sample or "",
                        ),
                    )
                    for g in message.errors
                ],
            )
        audit_tables = self.query("#audit-table").results(DataTable)
        if message.audit is not None and (audit_table := next(audit_tables, None)) is not None:
            show_rows(
                audit_table,
                [
                    (
                        str(a.id),
                        (local_time(a.at, zone, seconds=True), a.actor, a.action, _detail_text(a.detail)),
                    )
                    for a in message.audit
                ],
            )
        if message.cost is not None:
            self.query_one("#cost-text", Static).update(cost_table(message.cost))
        if message.zones is not None:
            panel = self.query_one("#zones", Static)
            panel.update(zones_text(message.detail, message.zones, zone))
            panel.display = True
        if message.quiet is not None:
            held = self.query_one("#quiet", Static)
            held.update(f"quiet hours {message.quiet.quiet_hours} · {message.quiet.line()}")
            held.display = True
        page_no = len(self.pages)
        more = "more →" if self.next_after is not None else "last page"
        status = (
            f"recipients: {RECIPIENT_FILTERS[self.filter_index][0]} · page {page_no} ({more}) · "
            f"times in {settings.BLAST_TIMEZONE}"
        )
        if message.detail.counts["failed"] > recipients.ERRORS_SCAN_MAX:
            status += f" · errors by code: the first {recipients.ERRORS_SCAN_MAX:,} failures"
        if status != self._status_shown:
            self._status_shown = status
            self.query_one("#detail-status", Static).update(status)

    # --- navigation ----------------------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(RECIPIENT_FILTERS)
        self.pages = [0]
        self.query_one(TabbedContent).active = "recipients"
        self.reload()

    def action_page(self, delta: int) -> None:
        if delta > 0 and self.next_after is not None:
            self.pages.append(self.next_after)
        elif delta < 0 and len(self.pages) > 1:
            self.pages.pop()
        else:
            return
        self.reload()

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]

    # --- actions -------------------------------------------------------------------------------------------

    def targets(self) -> list[int]:
        return [self.blast_id]

    def blast_view(self, blast_id: int) -> BlastView | None:
        return self.detail if blast_id == self.blast_id else None

    def actions_done(self, ids: list[int]) -> None:
        self.reload()


def zones_text(
    detail: blast_reads.BlastDetail, zones: list[blast_reads.ZoneProgress], shown_in: Any
) -> Table:
    """Per zone of a local-time blast: due at (in the console's zone), sent, waiting."""
    grid = Table(box=None, padding=(0, 2), show_edge=False)
    wall = (detail.local_time or "").replace("T", " ")
    for title in (f"{wall} local time in", "due at", "sent", "waiting", "failed"):
        grid.add_column(title, justify="left" if title != "sent" else "right")
    for z in zones:
        grid.add_row(z.zone, local_time(z.due_at, shown_in), f"{z.sent:,}", f"{z.waiting:,}", f"{z.failed:,}")
    return grid


def cost_table(cost: cost_estimate.BlastCost) -> Table:
    """The estimate and the actual cost side by side."""
    grid = Table.grid(padding=(0, 4))
    grid.add_column()
    grid.add_column()
    grid.add_row(
        "\n".join(cost_estimate.summary_lines(cost.estimate, limit=20)),
        "\n".join(cost_estimate.summary_lines(cost.actual, limit=20)),
    )
    return grid


def _detail_text(detail: object) -> str:
    if isinstance(detail, dict):
        return ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
    return str(detail or "")
