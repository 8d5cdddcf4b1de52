"""Provides the jobs screen: the daemons' recent jobs (blast runs, chunks, template syncs, recovery sweeps)
with
outcome, duration and error; a failed job is retried by key."""

from __future__ import annotations

import re
import time

from rich.text import Text
from textual import work
from textual.binding import Binding

from console.format import ago
from console.modals.confirm import ConfirmModal
from console.screens.table_screen import TableScreen
from console.widgets.status_badge import status_text
from console.widgets.table_rows import Rows
from shared.errors import InvalidTransition
from shared.services import blast_actions, blast_reads, live
from shared.status import BlastStatus
from shared.text import plural

BLAST_KEY = re.compile(r"^blast:(\d+)")


class JobsScreen(TableScreen[list[live.JobRecord]]):
    """The newest jobs first, refreshed every two seconds."""

    REFRESH_S = 2.0
    TABLE_ID = "job-table"
    STATUS_ID = "jobs-status"
    COLUMNS = ("When", "Kind", "Key", "Outcome", "Duration", "Daemon", "Error")
    BINDINGS = [
        Binding("r", "retry_job", "Retry", tooltip="Retry the failed job under the cursor", id="jobs.retry"),
        Binding("f", "failed_only", "Failed only", tooltip="Show only failed jobs", id="jobs.failed"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, live.JobRecord] = {}
        self.failed_only = False

    async def fetch(self) -> list[live.JobRecord]:
        jobs = await live.recent_jobs(self.console.settings, limit=300)
        self.jobs = {j.id: j for j in jobs}
        return jobs

    def rows_of(self, data: list[live.JobRecord]) -> Rows:
        now = time.time()
        return [
            (
                j.id,
                (
                    ago(now - j.at),
                    j.kind,
                    j.key,
                    status_text(j.outcome),
                    f"{j.duration_ms:,} ms",
                    j.daemon,
                    Text(j.error or "", style="red"),
                ),
            )
            for j in data
            if not self.failed_only or j.outcome == "failed"
        ]

    def status_of(self, data: list[live.JobRecord]) -> str:
        failed = sum(1 for j in data if j.outcome == "failed")
        return f"{len(data)} recent jobs, {failed} failed" + (
            " · showing failed only" if self.failed_only else ""
        )

    def action_failed_only(self) -> None:
        self.failed_only = not self.failed_only
        self.reload()

    def _current(self) -> live.JobRecord | None:
        key = self.current_key()
        return None if key is None else self.jobs.get(key)

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
