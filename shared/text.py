"""Provides the wording rules every program's messages share (the console, both CLIs, the services' errors)."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None, *, grouped: bool = True) -> str:
    """A count with its noun in the right number: plural(1, "recipient") is "1 recipient", plural(1200,
    "recipient") "1,200 recipients" (`grouped=False`: "1200 recipients", for output scripts read)."""
    number = f"{n:,}" if grouped else str(n)
    return f"{number} {one if n == 1 else (many or one + 's')}"
