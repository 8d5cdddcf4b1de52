"""Provides the one patch of tortoise-orm's internals: transactions that break on a lost connection leave nothing
behind (`guard_transaction_enter`, applied by shared.db.open_db).

tortoise's pooled (PostgreSQL) and SQLite transaction contexts set the task's connection context before BEGIN;
when BEGIN raises (the database just went away), `__aexit__` never runs. And the pooled one's `__aexit__` resets
the context only after giving the connection back, which raises for a connection the server terminated. Either
way the task keeps the dead transaction as its connection for good: every later query of the task, and of tasks
it starts, fails ("connection has been released back to the pool") or shares one connection ("another operation
is in progress"), so a chunk could not write its results even after the database came back.

The patch is written against the internals of one tortoise-orm minor version (TESTED_MINOR, pinned in
pyproject.toml). With another version it is not applied, and a warning says so once, at import:
tests/shared/test_library_patches.py fails when the patched methods change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import TransactionContextPooled
from tortoise.backends.sqlite.client import SqliteTransactionContext

from shared.versions import is_tested

#: The tortoise-orm minor version whose internals the patch was written and tested against.
TESTED_MINOR = "1.1"
#: The methods the patch wraps, as tortoise defines them (the tests fingerprint their source).
ORIGINALS: dict[str, Callable[..., Any]] = {
    "TransactionContextPooled.__aenter__": TransactionContextPooled.__aenter__,
    "TransactionContextPooled.__aexit__": TransactionContextPooled.__aexit__,
    "SqliteTransactionContext.__aenter__": SqliteTransactionContext.__aenter__,
}


#: Whether the installed tortoise-orm is the tested one (else the patch is left out).
APPLIES = is_tested(
    "tortoise-orm",
    TESTED_MINOR,
    patch="the transaction guard",
    without="a task whose transaction broke on a lost database connection may keep failing until restarted",
)


def guard_transaction_enter() -> None:
    """Make a transaction that breaks on a lost connection leave nothing behind (see the module docstring): the
    context is always reset and the connection or lock given back. Idempotent; nothing on an untested version."""
    if not APPLIES:
        return
    if getattr(TransactionContextPooled.__aenter__, "_blast_guarded", False):
        return
    pooled_enter = ORIGINALS["TransactionContextPooled.__aenter__"]
    pooled_exit = ORIGINALS["TransactionContextPooled.__aexit__"]
    sqlite_enter = ORIGINALS["SqliteTransactionContext.__aenter__"]

    def reset(token: Any) -> None:
        if token is not None and not token._used:
            with contextlib.suppress(ValueError, RuntimeError):  # set in another task's context
                connections.reset(token)

    async def pooled_aenter(self: TransactionContextPooled) -> Any:
        try:
            return await pooled_enter(self)
        except BaseException:
            reset(getattr(self, "token", None))
            conn = getattr(self.client, "_connection", None)
            pool = self.client._parent._pool
            if conn is not None and pool is not None:
                with contextlib.suppress(Exception):
                    await pool.release(conn)
            raise

    async def pooled_aexit(self: TransactionContextPooled, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            await pooled_exit(self, exc_type, exc_val, exc_tb)
        finally:
            reset(getattr(self, "token", None))

    async def sqlite_aenter(self: SqliteTransactionContext) -> Any:
        try:
            return await sqlite_enter(self)
        except BaseException:
            reset(getattr(self, "token", None))
            if self._trxlock.locked():
                self._trxlock.release()
            raise

    pooled_aenter._blast_guarded = True  # type: ignore[attr-defined]  # marks the patch as applied
    TransactionContextPooled.__aenter__ = pooled_aenter  # type: ignore[method-assign]  # see the module docstring
    TransactionContextPooled.__aexit__ = pooled_aexit  # type: ignore[method-assign]  # see the module docstring
    SqliteTransactionContext.__aenter__ = sqlite_aenter  # type: ignore[method-assign]  # see the module docstring
