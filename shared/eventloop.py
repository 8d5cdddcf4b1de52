"""Provides the event loop of the daemon and the fake Graph API: uvloop when it is installed (its sockets and
callbacks in C roughly halve the webhook server's per-request cost), else asyncio's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["loop_factory", "run"]


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory for "auto" when uvloop is installed (or for "uvloop", which then must be); None
    (asyncio's default loop) for "asyncio" or without uvloop.
    """
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, kind: str = "auto") -> T:
    """asyncio.run(main) on the loop `loop_factory(kind)` chooses."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
