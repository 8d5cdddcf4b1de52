"""Provides what every CLI command shares: running a coroutine with the database open, --json output, and turning
errors into one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.config import Settings, get_settings
from shared.db import close_db, open_db
from shared.errors import BlastError
from shared.events import close_redis_clients
from shared.redis_conn import redis_hint, target_text
from shared.text import first_line

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_USAGE = 2


@dataclass
class CliState:
    """Options of the whole command line (set by the top-level group)."""

    json: bool = False
    read_only: bool = False


def state() -> CliState:
    ctx = click.get_current_context()
    obj = ctx.find_object(CliState)
    return obj if obj is not None else CliState()


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print one line on stderr and exit."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def load() -> Settings:
    try:
        return get_settings()
    except BlastError as exc:
        fail(str(exc))
        raise AssertionError from exc  # unreachable


def run(work: Callable[[Settings], Awaitable[T]], *, mutating: bool = False, needs_db: bool = True) -> T:
    """Run `work(settings)` with the database open; BlastError -> one line on stderr, exit 1."""
    if mutating and state().read_only:
        fail("this console is read-only (--read-only); the action was refused")
    settings = load()

    async def main() -> T:
        try:
            if needs_db:
                await open_db(settings)
            return await work(settings)
        finally:
            if needs_db:
                await close_db()
            await close_redis_clients()

    try:
        return asyncio.run(main())
    except BlastError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except (RedisConnectionError, RedisTimeoutError, RedisResponseError) as exc:
        hint = redis_hint(exc)
        if hint is not None:
            fail(f"Redis at {target_text(settings)} refused: {first_line(exc, empty='no details')} ({hint})")
        if not isinstance(exc, RedisResponseError):
            fail(
                f"cannot reach Redis at {target_text(settings)}: {first_line(exc, empty='no details')} "
                "(check REDIS_URL or REDIS_HOST/REDIS_PORT, and that redis-server runs)"
            )
        fail(f"unexpected Redis error: {first_line(exc, empty='no details')}", 3)
    except Exception as exc:
        if os.environ.get("BLAST_DEBUG"):
            raise
        fail(
            f"unexpected {type(exc).__name__}: {first_line(exc, empty='no details')} (set BLAST_DEBUG=1 for the traceback)",
            3,
        )
    raise AssertionError("unreachable")


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2) + "\n")


def fmt_time(value: datetime | None, settings: Settings) -> str:
    if value is None:
        return "-"
    local = value.astimezone(settings.zone)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Print a plain aligned table (stdout)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    click.echo(line.rstrip())
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
