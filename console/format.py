"""Provides the small text formatters the console's widgets share (times in BLAST_TIMEZONE, durations,
bars)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from shared.text import duration

if TYPE_CHECKING:
    from shared.services.senders import SenderInfo

BAR_FULL = "█"
BAR_EMPTY = "░"


def local_time(value: datetime | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """A UTC time shown in the operator's zone, e.g. 2025-06-01 09:00."""
    if value is None:
        return "-"
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def example_send_time(now: datetime, zone: ZoneInfo) -> str:
    """A send time to show as an example in a hint: tomorrow at 09:00 in the blast's zone, always in the future."""
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return f"{tomorrow:%Y-%m-%d} 09:00"


def sender_cells(info: SenderInfo) -> list[str]:
    """A sender number's row, as `sender list` and the Senders screen show it (its token setting, never the
    token): id, name, WABA, rate, level, quality, limit, token setting, default."""
    return [
        info.phone_number_id,
        info.name,
        info.waba_id,
        f"{info.rate:g}/s",
        info.throughput_level or "-",
        info.quality_rating or "-",
        info.messaging_limit_tier or "-",
        info.token_env if info.has_token else f"{info.token_env} (unset)",
        "yes" if info.is_default else "",
    ]


def ago(seconds: float) -> str:
    return "now" if seconds < 1 else f"{duration(seconds)} ago"


def bar(done: int, total: int, width: int = 10) -> str:
    """A text progress bar with its percentage: ██████░░░░  60%."""
    if total <= 0:
        return BAR_EMPTY * width + "   -"
    frac = min(1.0, max(0.0, done / total))
    full = int(frac * width)
    return BAR_FULL * full + BAR_EMPTY * (width - full) + f" {int(frac * 100):3d}%"


def done_count(counts: dict[str, int], total: int) -> int:
    """Recipients whose sending is over (everything but pending and sending)."""
    return total - counts.get("pending", 0) - counts.get("sending", 0)


def eta_seconds(remaining: int, rate: float) -> float | None:
    return remaining / rate if rate > 0 and remaining > 0 else (0.0 if remaining <= 0 else None)
