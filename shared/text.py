"""Provides the wording rules every program's messages share (the console, both CLIs, the services' errors)."""

from __future__ import annotations


def first_line(exc: BaseException, *, limit: int = 300, empty: str | None = None) -> str:
    """The first line of an exception's text, cut to `limit` characters: `empty` (default: the exception's type
    name) when it has none. redis-py's MasterNotFoundError loses the sentinel clients' reprs it appends."""
    text = str(exc).strip()
    if type(exc).__name__ == "MasterNotFoundError":
        text = text.split(" : ", 1)[0]
    if not text:
        return type(exc).__name__ if empty is None else empty
    return text.splitlines()[0][:limit]


def plural(n: int, one: str, many: str | None = None, *, grouped: bool = True) -> str:
    """A count with its noun in the right number: plural(1, "recipient") is "1 recipient", plural(1200,
    "recipient") "1,200 recipients" (`grouped=False`: "1200 recipients", for output scripts read)."""
    number = f"{n:,}" if grouped else str(n)
    return f"{number} {one if n == 1 else (many or one + 's')}"


def duration(seconds: float | None) -> str:
    """A duration for people: 45s, 12m 05s, 3h 20m, 2d 4h."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
