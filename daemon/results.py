"""Provides the daemon's one writer of send results: every chunk of the process hands it each request's outcome;
it writes them set-based (one statement per flush, each row guarded by its status and its chunk's lease), then
feeds the live send rates and the failure-rate windows with one Redis script per flush.

Results are written as soon as they arrive, at most once per FLUSH_MIN_GAP_S (a crash between a response and its
write turns that recipient UNKNOWN, so the window stays small) and in bigger batches under load. While the
database refuses the write, `failing` is set (every chunk stops sending) and the batch is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

from shared.events import publish
from shared.services import blast_lifecycle, failure_rate
from shared.services.transitions import SendOutcome, record_send_outcomes
from shared.status import RecipientStatus

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger(__name__)
R = RecipientStatus

#: Results are written at most this often (and at once when the writer is idle).
FLUSH_MIN_GAP_S = 0.05
#: A write that failed (database unreachable) is retried after this long.
RETRY_S = 0.5


class ResultOwner(Protocol):
    """A chunk: told how many of its results were written."""

    def written(self, n: int) -> None: ...


class ResultWriter:
    """The process's writer of send results (see the module doc)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._batch: list[tuple[SendOutcome, ResultOwner]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: the last write failed: chunks stop sending until a write succeeds
        self.failing = False
        self.flushes = 0
        self._closing = False

    def add(self, outcome: SendOutcome, owner: ResultOwner) -> None:
        """Queue one result (written within FLUSH_MIN_GAP_S unless the database is away)."""
        self._batch.append((outcome, owner))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="result-writer")

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            started = time.monotonic()
            if not await self.flush():
                await asyncio.sleep(RETRY_S)
                self._wake.set()
                continue
            gap = FLUSH_MIN_GAP_S - (time.monotonic() - started)
            if gap > 0:
                await asyncio.sleep(gap)

    async def flush(self) -> bool:
        """Write what is queued; False when the database refused (the results stay queued)."""
        if not self._batch:
            return True
        batch, self._batch = self._batch, []
        try:
            await record_send_outcomes([o for o, _ in batch])
        except Exception as exc:
            self._batch = batch + self._batch
            if not self.failing:
                log.error(
                    "cannot write %s send results (%s: %s); sending stopped, retrying",
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
            self.failing = True
            return False
        if self.failing:
            log.info("send results written again")
        self.failing = False
        self.flushes += 1
        done: dict[int, tuple[ResultOwner, int]] = {}
        for _, owner in batch:
            _, n = done.get(id(owner), (owner, 0))
            done[id(owner)] = (owner, n + 1)
        for owner, n in done.values():
            owner.written(n)
        await self._feed([o for o, _ in batch])
        return True

    async def _feed(self, batch: Sequence[SendOutcome]) -> None:
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for o in batch:
            c = counts[o.blast_id]
            if o.to != R.PENDING or o.error_code is not None or o.error_text:
                c[0] += 1  # a request was made (a PENDING without error was never sent)
            if o.to == R.SENT:
                c[1] += 1
            elif o.to in (R.FAILED, R.UNKNOWN):
                c[2] += 1
        feeds = {b: failure_rate.SendFeed(*c) for b, c in counts.items()}
        rt = self.rt
        try:
            windows = await failure_rate.feed_send_results(rt.settings, feeds, client=rt.redis)
        except (RedisError, OSError) as exc:
            log.debug("live counters not updated: %s", exc)
            return
        for blast_id, window in windows.items():
            if window.tripped and rt.halts.halt(blast_id, "failure rate"):
                try:
                    await failure_rate.reset_window(rt.settings, blast_id, client=rt.redis)
                    reason = failure_rate.pause_reason(window)
                    if await blast_lifecycle.pause_for_error(
                        blast_id, reason=reason, code=None, actor=rt.actor
                    ):
                        await publish(rt.settings, "paused", blast_id=blast_id)
                except Exception as exc:  # the halt stands; the status watcher or an operator pauses it
                    log.warning("blast %s: failure-rate pause not recorded (%s)", blast_id, exc)

    async def aclose(self) -> None:
        """Finish the write in progress, write what is left (one try) and stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10.0)
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
