"""Provides the jobs screen: the daemons' recent jobs (blast runs, chunks, template syncs, recovery sweeps)
with
outcome, duration and error; a failed job is retried by key."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from console.format import ago
from console.modals.confirm import ConfirmModal
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from console.widgets.status_badge import status_text
from shared.errors import InvalidTransition
from shared.services import blast_actions, blast_reads, live
from shared.status import BlastStatus
from shared.text import plural

BLAST_KEY = re.compile(r"^blast:(\d+)")


@dataclass
class JobsLoaded(Message):
    jobs: list[live.JobRecord]


class JobsScreen(BaseScreen):
    """The newest jobs first, refreshed every two seconds."""

    REFRESH_S = 2.0
    BINDINGS = [
        Binding("r", "retry_job", "Retry", tooltip="Retry the failed job under the cursor", id="jobs.retry"),
        Binding("f", "failed_only", "Failed only", tooltip="Show only failed jobs", id="jobs.failed"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, live.JobRecord] = {}
        self.failed_only = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield DataTable(id="job-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="jobs-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("When", "Kind", "Key", "Outcome", "Duration", "Daemon", "Error")
        self.query_one(DataTable).focus()
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_jobs()

    def reload(self) -> None:
        self.load_jobs()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_jobs(self) -> None:
        self.post_message(JobsLoaded(await live.recent_jobs(self.console.settings, limit=300)))

    def on_jobs_loaded(self, m: JobsLoaded) -> None:
        shown = [j for j in m.jobs if not self.failed_only or j.outcome == "failed"]
        self.jobs = {j.id: j for j in shown}
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        now = time.time()
        for j in shown:
            table.add_row(
                ago(now - j.at),
                j.kind,
                j.key,
                status_text(j.outcome),
                f"{j.duration_ms:,} ms",
                j.daemon,
                Text(j.error or "", style="red"),
                key=j.id,
            )
        if shown:
            table.move_cursor(row=min(row, len(shown) - 1), animate=False)
        failed = sum(1 for j in m.jobs if j.outcome == "failed")
        self.query_one("#jobs-status", Static).update(
            f"{len(m.jobs)} recent jobs, {failed} failed"
            + (" · showing failed only" if self.failed_only else "")
        )

    def action_failed_only(self) -> None:
        self.failed_only = not self.failed_only
        self.reload()

    def _current(self) -> live.JobRecord | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.jobs.get(str(key))

    def action_retry_job(self) -> None:
        if self.refuse_if_read_only():
            return
        job = self._current()
        if job is None:
            return
        if job.outcome != "failed":
            self.notify(f"job {job.key} did not fail ({job.outcome}); nothing to retry", severity="warning")
            return
        if job.kind == "template_sync":
            self.console.action_sync_templates()
            return
        match = BLAST_KEY.match(job.key)
        if match is None:
            self.notify(f"job {job.key} cannot be retried from here", severity="warning")
            return
        blast_id = int(match.group(1))

        def answered(yes: bool | None) -> None:
            if yes:
                self.retry_worker(blast_id)

        self.app.push_screen(
            ConfirmModal(
                "Retry job",
                f"Retry {job.kind} {job.key}: re-queue blast {blast_id}'s failed work?",
                confirm_label="Retry",
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def retry_worker(self, blast_id: int) -> None:
        settings = self.console.settings
        detail = await blast_reads.show_blast(blast_id)
        if detail.status == BlastStatus.PAUSED:
            await blast_actions.resume_blast(blast_id, settings=settings)
            self.notify(f"blast {blast_id} resumed", title="Retried")
            return
        try:
            result = await blast_actions.retry_blast(blast_id, settings=settings)
        except InvalidTransition as exc:
            self.notify(exc.message, title="Not allowed", severity="error")
            return
        self.notify(f"blast {blast_id}: {plural(result.requeued, 'recipient')} re-queued", title="Retried")
