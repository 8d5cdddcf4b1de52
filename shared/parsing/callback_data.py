"""Owns the one rule for `biz_opaque_callback_data`: the sender writes it (`callback_data`), the webhook parser
reads it back (`parse_callback_data`) to find the recipient row of a status whose wamid is not stored yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CallbackRef:
    """What the sender put in `biz_opaque_callback_data`: which recipient row (and attempt) a message is."""

    blast_id: int | None
    recipient_id: int
    attempt: int | None = None


def callback_data(blast_id: int, recipient_id: int, attempt: int) -> str:
    """The `biz_opaque_callback_data` of a send: names the blast, the recipient and the attempt (≤ 512 chars)."""
    return f"blast={blast_id};rcpt={recipient_id};try={attempt}"


_CALLBACK_KEYS = {
    "blast": "blast_id",
    "b": "blast_id",
    "rcpt": "recipient_id",
    "r": "recipient_id",
    "recipient": "recipient_id",
    "try": "attempt",
    "t": "attempt",
}


def parse_callback_data(value: Any) -> CallbackRef | None:
    """Read "blast=42;rcpt=9001;try=1" (also JSON {"blast": …, "rcpt": …}); None if it names no recipient."""
    if not isinstance(value, str) or not value or len(value) > 512:
        return None
    found: dict[str, int] = {}
    items: Iterable[tuple[Any, Any]]
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        items = parsed.items() if isinstance(parsed, dict) else ()
    else:
        pairs = (part.partition("=") for part in re.split(r"[;&,]", value) if "=" in part)
        items = [(key, raw) for key, _, raw in pairs]
    for key, raw in items:
        name = _CALLBACK_KEYS.get(str(key).strip().lower())
        number = as_int(raw)
        if name is not None and number is not None and number >= 0:
            found[name] = number
    if "recipient_id" not in found:
        return None
    return CallbackRef(found.get("blast_id"), found["recipient_id"], found.get("attempt"))


def as_int(value: Any) -> int | None:
    """A non-bool int below 2**62, or a string of at most 18 ASCII digits, as an int; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**62 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) < 19:
            return int(text)
    return None
