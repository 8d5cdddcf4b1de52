"""Provides how a long-running loop tells an outage of the database or Redis from a bug, and rides the outage
out: one WARNING when it starts, one INFO when it ends, a growing backoff in between (the daemon's loops and the
webhook applier).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from shared.text import first_line

#: How many links of an error's `__cause__` chain are looked at (and named in the log).
_CHAIN_MAX = 4


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it (`raise … from …`, e.g. taskiq's SendTaskError from redis-py's
    ConnectionError), and so on; an exception group stands for its first leaf (taskiq's receiver wraps the
    Redis error in one).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_MAX:
        seen.add(id(current))
        while isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        yield current
        current = current.__cause__


def describe(exc: BaseException) -> str:
    """One line naming the error and its causes, e.g. "SendTaskError: Cannot send task to the queue (caused by
    ConnectionError: Connection closed by server.)"; a cause that only repeats the message is named by its type.
    """
    parts: list[str] = []
    previous = None
    for link in causes(exc):
        text = first_line(link, empty="")
        parts.append(f"{type(link).__name__}: {text}" if text and text != previous else type(link).__name__)
        previous = text
    head, rest = parts[0], parts[1:]
    return f"{head} (caused by {', caused by '.join(rest)})" if rest else head


def is_outage(exc: BaseException) -> bool:
    """True for errors that say the database or Redis cannot be reached now (connection refused, reset or
    terminated, a database not taking connections, SQLite busy), as opposed to bugs: those get a traceback. An
    error caused by one of those (taskiq's SendTaskError from a ConnectionError) is an outage too.
    """
    return any(_is_outage_error(link) for link in causes(exc))


def _is_outage_error(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

    if isinstance(exc, OSError | RedisConnectionError | RedisTimeoutError | DBConnectionError):
        return True
    from redis.exceptions import ReadOnlyError

    from shared.redis_conn import is_redis_full

    # A full Redis (noeviction) and a master just demoted to replica refuse writes until they take them again.
    if isinstance(exc, ReadOnlyError) or is_redis_full(exc):
        return True
    if isinstance(exc, OperationalError) and not isinstance(exc, IntegrityError):
        return True
    import asyncpg  # deferred: SQLite deployments never load it

    return isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.InternalClientError  # "another operation is in progress" on a connection being torn down
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.ObjectNotInPrerequisiteStateError,
    )


def _fix(exc: BaseException) -> str:
    """ "; <what to do>" for a Redis error that names a configuration or capacity problem, else ""."""
    from shared.redis_conn import redis_hint

    for link in causes(exc):
        hint = redis_hint(link)
        if hint:
            return "; " + hint
    return ""


class OutageLog:
    """Logs a loop's failures once per streak (the first at WARNING, the rest at DEBUG, the recovery at INFO)
    and gives the backoff before its next try, so that an outage of the database or Redis neither floods the
    log nor hammers the server.

    Args:
        logger: where to log.
        what: the loop's name, e.g. "scheduler".
        base_s: the first wait; it doubles per failure up to `cap_s`.
    """

    def __init__(
        self, logger: logging.Logger, what: str, *, base_s: float = 0.5, cap_s: float = 10.0
    ) -> None:
        self.logger = logger
        self.what = what
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._since = 0.0

    def failed(self, exc: BaseException) -> float:
        """Note a failure; returns how long to wait before trying again.

        The log names the error and its causes (`describe`): "SendTaskError: Cannot send task to the queue"
        alone does not say that Redis went away.
        """
        if self.failures == 0:
            self._since = time.monotonic()
            top = next(causes(exc))
            detail = describe(exc).removeprefix(type(top).__name__) + _fix(exc)
            self.logger.warning(
                "%s: %s%s; retrying with backoff (logged once until it works again)",
                self.what,
                type(top).__name__,
                detail,
            )
        else:
            self.logger.debug("%s: still failing (%s)", self.what, describe(exc))
        self.failures += 1
        return float(min(self.cap_s, self.base_s * 2 ** (self.failures - 1)))

    def ok(self) -> None:
        """Note a success; logs the end of a streak."""
        if self.failures:
            self.logger.info(
                "%s: working again after %s failed attempts (%.1f s)",
                self.what,
                self.failures,
                time.monotonic() - self._since,
            )
            self.failures = 0
