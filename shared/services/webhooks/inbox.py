"""Owns the durable inbox of raw webhook bodies (table webhook_event): the group-commit writer behind the ack
(a 200 means the row is committed), and the purge of processed rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tortoise import connections

from shared.clock import utcnow
from shared.config import Settings
from shared.models import WebhookEvent
from shared.text import first_line

log = logging.getLogger(__name__)

#: A webhook POST waits at most this long for its row to be stored; then it is answered 503 and Meta retries.
STORE_TIMEOUT_S = 10.0

#: The wake-up events of this process's running appliers (set when this process stores webhook events).
APPLIER_WAKES: set[asyncio.Event] = set()
PURGE_BATCH = 5000


class EventWriter:
    """Stores raw webhook bodies with group commit: the POSTs that arrive while one INSERT runs share the next
    one, and `store` returns only once its row is committed (so the 200 that follows means "stored": Meta
    retries anything else).

    The batch size adapts to the load by itself (arrivals during one INSERT form the next). On PostgreSQL the
    writer keeps one pooled connection while there is a queue (no pool reset per INSERT) and gives it back
    when idle. A body waits at most `timeout_s` in all: the writer fails what it could not store in time (no
    timer per request), and the handler answers 503.
    """

    def __init__(self, *, max_batch: int = 1000, timeout_s: float = STORE_TIMEOUT_S) -> None:
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        #: (body, received at, future, loop time of arrival)
        self._pending: list[tuple[str, datetime, asyncio.Future[None], float]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Committed INSERTs and rows since start (the bench reports the mean group size).
        self.batches = 0
        self.rows = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook-event-writer")

    def submit(self, body: str) -> asyncio.Future[None]:
        """Queue one body; the future is done once its row is committed, or fails (not stored in time, or the
        database refused the INSERT: answer 503 so Meta retries).

        Raises:
            RuntimeError: the writer is stopped.
        """
        if self._closing or not self.running:
            raise RuntimeError("the webhook event writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((body, utcnow(), future, loop.time()))
        self._wake.set()
        return future

    async def store(self, body: str) -> None:
        """Store one body durably (see `submit`)."""
        await self.submit(body)

    async def _run(self) -> None:
        try:
            while True:
                if self._pending:
                    await self._drain()  # each pass stores or fails at least one batch
                    continue
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
        finally:
            self._fail_pending(RuntimeError("the webhook event writer stopped"))

    async def _drain(self) -> None:
        conn = connections.get("default")
        if conn.capabilities.dialect != "postgres":
            while self._pending:
                await self._insert_batch(insert_events)
            return
        try:
            async with conn.acquire_connection() as con:
                while self._pending:
                    ok = await self._insert_batch(partial(insert_events_pg, con))
                    if not ok:
                        return  # the connection may be broken: the pool gives a fresh one next time
        except Exception as exc:  # acquiring failed: the database is away
            log.warning("could not store %s webhook events: %s", len(self._pending), first_line(exc))
            self._fail_pending(exc)

    async def _insert_batch(
        self, insert: Callable[[Sequence[tuple[str, datetime]]], Awaitable[None]]
    ) -> bool:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        loop = asyncio.get_running_loop()
        budget = batch[0][3] + self.timeout_s - loop.time()
        try:
            if budget <= 0:
                raise TimeoutError(f"not stored within {self.timeout_s:g} s")
            async with asyncio.timeout(budget):
                await insert([(body, at) for body, at, _, _ in batch])
        except Exception as exc:
            log.warning("could not store %s webhook events: %s", len(batch), first_line(exc))
            for _, _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return False
        self.batches += 1
        self.rows += len(batch)
        for wake in APPLIER_WAKES:  # this process's appliers apply them now, not at their next idle poll
            wake.set()
        for _, _, future, _ in batch:
            if not future.done():
                future.set_result(None)
        return True

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, []
        for _, _, future, _ in pending:
            if not future.done():
                future.set_exception(exc)

    async def close(self) -> None:
        """Store what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_pending(RuntimeError("the webhook event writer stopped"))


_INSERT_PG = (
    "INSERT INTO webhook_event (received_at, body, attempts) "
    "SELECT r, b, 0 FROM unnest($1::timestamptz[], $2::text[]) AS t(r, b)"
)


async def insert_events_pg(con: Any, rows: Sequence[tuple[str, datetime]]) -> None:
    # One prepared statement for the whole batch, on a connection the writer holds: committed when it returns.
    await con.execute(_INSERT_PG, [at for _, at in rows], [body for body, _ in rows])


async def insert_events(rows: Sequence[tuple[str, datetime]]) -> None:
    """INSERT raw bodies (body, received_at) in one statement; committed when it returns."""
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        # One statement for the whole batch, without building an ORM object per row (the ack path's cost).
        await conn.execute_query(_INSERT_PG, [[at for _, at in rows], [body for body, _ in rows]])
        return
    await WebhookEvent.bulk_create([WebhookEvent(body=body, received_at=at, attempts=0) for body, at in rows])


async def store_event(body: str) -> int:
    """Store one raw body at once (tests and tools; the server uses EventWriter)."""
    event = await WebhookEvent.create(body=body, received_at=utcnow(), attempts=0)
    return int(event.id)


async def purge_processed(settings: Settings, *, limit: int = PURGE_BATCH) -> int:
    """Delete processed raw events older than BLAST_WEBHOOK_EVENT_RETENTION_S (a bounded batch per call)."""
    cutoff = utcnow() - timedelta(seconds=settings.BLAST_WEBHOOK_EVENT_RETENTION_S)
    ids = (
        await WebhookEvent.filter(processed_at__lt=cutoff)
        .order_by("id")
        .limit(limit)
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    return int(await WebhookEvent.filter(id__in=list(ids)).delete() or 0)


async def backlog() -> int:
    """Stored events not applied yet."""
    return await WebhookEvent.filter(processed_at__isnull=True).count()
