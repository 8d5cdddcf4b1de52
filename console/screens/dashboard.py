"""Provides the dashboard: daemons alive and what each holds, work stream depths, messages/s with a sparkline,
blasts by status and the last template sync."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Header, Sparkline, Static

from console.format import ago, local_time
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from console.widgets.table_rows import show_rows
from shared.services import blast_reads, live, queue_stats
from shared.services.templates import last_sync
from shared.text import first_line

SPARK_POINTS = 60


@dataclass
class DashboardLoaded(Message):
    by_status: dict[str, int]
    stats: queue_stats.QueueStats | None
    redis_error: str | None
    last_sync: live.JobRecord | None
    templates_synced_at: datetime | None


class DashboardScreen(BaseScreen):
    """The state of the whole deployment, refreshed about once a second."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: deque[float] = deque([0.0] * SPARK_POINTS, maxlen=SPARK_POINTS)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        with Horizontal(id="dash-top"):
            with Vertical(id="dash-rate"):
                yield Static("messages/s: -", id="rate-now")
                yield Sparkline(list(self.rates), id="rate-spark")
            yield Static("", id="by-status")
        yield Static("", id="sync-line")
        yield DataTable(id="daemon-table", cursor_type="row")
        yield DataTable(id="stream-table", cursor_type="row")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one("#daemon-table", DataTable).add_columns("Daemon", "Host", "Provider", "Seen", "Holds")
        self.query_one("#stream-table", DataTable).add_columns(
            "Stream", "Length", "Pending (unacked)", "Consumers"
        )
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_dashboard()

    def reload(self) -> None:
        self.load_dashboard()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_dashboard(self) -> None:
        by_status = await blast_reads.count_by_status()
        synced_at = await last_sync()
        stats = None
        sync_job = None
        redis_error = None
        try:
            stats = await queue_stats.queue_stats(self.console.settings)
            jobs = await live.recent_jobs(self.console.settings, limit=200)
            sync_job = next((j for j in jobs if j.kind == "template_sync"), None)
        except Exception as exc:
            redis_error = first_line(exc)
        self.post_message(DashboardLoaded(by_status, stats, redis_error, sync_job, synced_at))

    def on_dashboard_loaded(self, m: DashboardLoaded) -> None:
        settings = self.console.settings
        lines = [f"{status:<11} {n:>7,}" for status, n in m.by_status.items()]
        self.query_one("#by-status", Static).update("Blasts by status\n" + "\n".join(lines))
        if m.stats is not None:
            self.rates.append(m.stats.rate.current)
            self.query_one("#rate-now", Static).update(
                f"messages/s now: {m.stats.rate.current:,.1f} (limit {m.stats.rate.limit:g}/s)"
            )
            self.query_one("#rate-spark", Sparkline).data = list(self.rates)
            now = time.time()
            daemon_rows: list[tuple[str, tuple[str, ...]]] = []
            for d in m.stats.daemons:
                state = ago(now - d.last_seen) if d.alive else f"DEAD ({ago(now - d.last_seen)})"
                daemon_rows.append((d.id, (d.id, d.host, d.provider, state, ", ".join(d.chunks) or "idle")))
            if not m.stats.daemons:
                daemon_rows.append(
                    ("none", ("no daemon alive", "", "", "", "start blast-daemon (or --with-daemon)"))
                )
            show_rows(self.query_one("#daemon-table", DataTable), daemon_rows)
            show_rows(
                self.query_one("#stream-table", DataTable),
                [
                    (s.name, (s.name, f"{s.length:,}", f"{s.pending:,}", str(s.consumers)))
                    for s in m.stats.streams
                ],
            )
        else:
            self.query_one("#rate-now", Static).update(f"messages/s: unknown (Redis: {m.redis_error})")
        if m.last_sync is not None:
            j = m.last_sync
            outcome = "ok" if j.outcome == "ok" else f"{j.outcome}: {j.error or ''}"
            text = f"last template sync: {ago(time.time() - j.at)}, {outcome} ({j.duration_ms} ms)"
        elif m.templates_synced_at is not None:
            text = f"last template sync: {local_time(m.templates_synced_at, settings.zone)}"
        else:
            text = "last template sync: never (press s)"
        self.query_one("#sync-line", Static).update(text)
