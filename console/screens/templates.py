"""Provides the templates screen: status, category, language, parameters and rejection reason; sync and
submit."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from console.format import local_time
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from console.widgets.status_badge import status_text
from shared.services import templates
from shared.text import plural


@dataclass
class TemplatesLoaded(Message):
    items: list[templates.TemplateSummary]


class TemplatesScreen(BaseScreen):
    """Every template as last synced from Meta (refreshed every few seconds: webhooks change them)."""

    REFRESH_S = 5.0
    BINDINGS = [
        Binding(
            "s",
            "app.sync_templates",
            "Sync now",
            tooltip="Ask Meta for every template's status",
            id="templates.sync",
        ),
        Binding(
            "u",
            "submit_template",
            "Submit",
            tooltip="Submit a new template for review",
            id="templates.submit",
        ),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield DataTable(id="template-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="template-detail", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "Name", "Lang", "Status", "Category", "Parameters", "Synced", "Rejection reason"
        )
        self.query_one(DataTable).focus()
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_templates()

    def reload(self) -> None:
        self.load_templates()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_templates(self) -> None:
        self.post_message(TemplatesLoaded(await templates.list_templates()))

    def on_templates_loaded(self, m: TemplatesLoaded) -> None:
        zone = self.console.settings.zone
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for t in m.items:
            table.add_row(
                t.name,
                t.language,
                status_text(t.status.value),
                t.category_shown,
                ", ".join(t.parameters) or "-",
                local_time(t.last_synced_at, zone),
                t.rejection_reason or "",
                key=f"{t.name}/{t.language}",
            )
        if m.items:
            table.move_cursor(row=min(row, len(m.items) - 1), animate=False)
        self.query_one("#template-detail", Static).update(
            f"{plural(len(m.items), 'template')} · only APPROVED ones can be sent · s syncs with Meta"
        )

    def action_submit_template(self) -> None:
        if self.refuse_if_read_only():
            return
        from console.modals.submit_template import SubmitTemplateModal

        self.app.push_screen(SubmitTemplateModal(), lambda _: self.reload())
