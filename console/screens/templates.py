"""Provides the templates screen: status, category, language, parameters and rejection reason; sync and
submit."""

from __future__ import annotations

from textual.binding import Binding

from console.format import local_time
from console.screens.table_screen import TableScreen
from console.widgets.status_badge import status_text
from console.widgets.table_rows import Rows
from shared.services import templates
from shared.text import plural


class TemplatesScreen(TableScreen[list[templates.TemplateSummary]]):
    """Every template as last synced from Meta (refreshed every few seconds: webhooks change them)."""

    REFRESH_S = 5.0
    TABLE_ID = "template-table"
    STATUS_ID = "template-detail"
    COLUMNS = ("Name", "Lang", "Status", "Category", "Parameters", "Synced", "Rejection reason")
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

    async def fetch(self) -> list[templates.TemplateSummary]:
        return await templates.list_templates()

    def rows_of(self, data: list[templates.TemplateSummary]) -> Rows:
        zone = self.console.settings.zone
        return [
            (
                f"{t.name}/{t.language}",
                (
                    t.name,
                    t.language,
                    status_text(t.status.value),
                    t.category_shown,
                    ", ".join(t.parameters) or "-",
                    local_time(t.last_synced_at, zone),
                    t.rejection_reason or "",
                ),
            )
            for t in data
        ]

    def status_of(self, data: list[templates.TemplateSummary]) -> str:
        return f"{plural(len(data), 'template')} · only APPROVED ones can be sent · s syncs with Meta"

    def action_submit_template(self) -> None:
        if self.refuse_if_read_only():
            return
        from console.modals.submit_template import SubmitTemplateModal

        self.app.push_screen(SubmitTemplateModal(), lambda _: self.reload())
