"""Provides the one clock every service reads: timezone-aware UTC now."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC (what every stored timestamp is)."""
    return datetime.now(UTC)
