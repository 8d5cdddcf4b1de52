"""Provides the app-wide messages (widget-specific ones are nested in their widget)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class HealthChanged(Message):
    """Reachability of the database and Redis changed (None = reachable, else the reason)."""

    db_error: str | None
    redis_error: str | None


@dataclass
class ReadOnlyChanged(Message):
    """The console became read-only (flag, or a read-only database role detected)."""

    read_only: bool
