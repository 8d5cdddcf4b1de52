"""Provides the head of the blast detail: identity, times, a progress bar, counts per bucket, rate and ETA."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from console.format import bar, done_count, eta_seconds, local_time
from console.widgets.status_badge import STATUS_STYLE
from shared.services.blast_reads import BlastDetail
from shared.status import BlastStatus
from shared.text import duration

BUCKETS = ("pending", "sending", "sent", "delivered", "read", "failed", "cancelled", "skipped", "unknown")


class ProgressPanel(Static):
    """Renders one BlastDetail with the live rate (messages/s) and the rate limit used for the estimate."""

    DEFAULT_CSS = "ProgressPanel { height: auto; padding: 0 1; }"

    def show(self, d: BlastDetail, *, rate: float, limit: float, zone: ZoneInfo, now: datetime) -> None:
        done = done_count(d.counts, d.total)
        remaining = d.counts["pending"] + d.counts["sending"]
        head = Text.assemble(
            (f"Blast {d.id} ", "bold"),
            (d.name, "bold"),
            f"  {d.template}/{d.language}  ",
            (d.status.value, STATUS_STYLE.get(d.status.value, "")),
        )
        times = f"send at {local_time(d.send_at, zone)} ({zone.key})"
        if d.valid_until:
            times += f" · valid until {local_time(d.valid_until, zone)}"
        if d.started_at:
            times += f" · started {local_time(d.started_at, zone, seconds=True)}"
        if d.finished_at:
            times += f" · finished {local_time(d.finished_at, zone, seconds=True)}"
        progress = Text(f"{bar(done, d.total, width=30)}  {done:,}/{d.total:,} done")
        counts = Text("  ".join(f"{k} {d.counts[k]:,}" for k in BUCKETS))
        if d.status == BlastStatus.PROCESSING:
            eta = eta_seconds(remaining, rate)
            est = (
                f"ETA {duration(eta)}"
                if eta is not None
                else f"ETA ~{duration(remaining / limit)} at the limit"
            )
            speed = Text(f"rate {rate:,.1f}/s (limit {limit:g}/s) · {est}")
        elif d.status == BlastStatus.SCHEDULED and d.send_at is not None:
            wait = (d.send_at - now).total_seconds()
            starts = f"starts in {duration(wait)}" if wait > 0 else "starting"
            speed = Text(f"{starts} · takes ~{duration(remaining / limit)} at {limit:g}/s")
        else:
            speed = Text(f"rate {rate:,.1f}/s")
        lines = [head, Text(times, style="dim"), progress, counts, speed]
        if d.error:
            code = f" (code {d.error_code})" if d.error_code else ""
            lines.append(Text(f"last error{code}: {d.error}", style="bold red"))
        self.update(Group(*lines))
