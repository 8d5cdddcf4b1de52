"""Provides the colour of each blast, recipient and template status (NO_COLOR still shows the word)."""

from __future__ import annotations

from rich.text import Text

STATUS_STYLE: dict[str, str] = {
    "DRAFT": "dim",
    "SCHEDULED": "cyan",
    "PROCESSING": "bold green",
    "PAUSED": "bold yellow",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "CANCELLED": "dim",
    "PENDING": "cyan",
    "SENDING": "green",
    "SENT": "green",
    "DELIVERED": "green",
    "READ": "bold green",
    "SKIPPED": "dim",
    "UNKNOWN": "bold magenta",
    "SUBMITTED": "yellow",
    "APPROVED": "green",
    "REJECTED": "bold red",
    "ok": "green",
    "failed": "bold red",
    "cancelled": "dim",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))
