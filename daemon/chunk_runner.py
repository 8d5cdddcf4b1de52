"""Provides the chunk runner: sends one chunk of a blast (about ten seconds at the rate limit), page by page.

A chunk claims pages of PENDING recipients under its lease (the next page while this one is sent), takes slots
from the daemon's slot feeder (full grants of the shared limiter), marks exactly the recipients of those slots
SENDING in one statement, and hands each to the daemon's request pool, which fires it at its slot (the blast's
halt flag is checked right before). A slot missed by more than a few ms comes back, and the recipient (still
SENDING, under the lease) waits for a new slot instead of leaving late. Results go to the daemon's result writer
(one set-based write per flush). So a crash leaves UNKNOWN only requests really in flight, plus at most one grant
(about GRANT_HORIZON_S of sending).

What each error does (shared/whatsapp/errors.py classifies): throttled (130429) -> the limiter slows down and
the recipient is retried after ~1 s; pair rate (131056) -> only that recipient waits 1, 4, 16, 64 s; other
retry-later errors -> backoff, FAILED after MAX_TRANSIENT_ATTEMPTS (network errors before sending retry
forever); recipient-permanent -> FAILED (131050 also adds the number to the suppression list); unknown outcome
-> UNKNOWN (never re-sent silently); blast-fatal -> the blast is halted at once in this process, paused with
the cause and the fix, and the recipient goes back to PENDING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from daemon.engine import ClaimCursor
from daemon.lanes import Lane
from daemon.rate_limit import RateLimiter
from daemon.runtime import Runtime
from shared.clock import utcnow
from shared.errors import ValidationFailed
from shared.events import publish
from shared.outage import is_outage
from shared.parsing.callback_data import callback_data
from shared.parsing.phones import mask_phone
from shared.parsing.template_params import build_send_components, header_format_of, param_keys
from shared.services import blast_lifecycle, claims, suppression
from shared.services.senders import UPGRADE_HOLD_S
from shared.services.transitions import SendOutcome
from shared.status import BlastStatus, RecipientStatus
from shared.whatsapp.base import (
    ErrorClass,
    GraphError,
    SendAccepted,
    SendFailed,
    SendResult,
    WhatsAppProvider,
)
from shared.whatsapp.errors import pair_rate_backoff_s

log = logging.getLogger(__name__)
R = RecipientStatus

#: A chunk stops taking pages after this long (so it never outlives the broker's reclaim timeout).
CHUNK_SECONDS = 10.0
#: Retry-later errors other than throttling fail the recipient after this many attempts.
MAX_TRANSIENT_ATTEMPTS = 5
#: A daemon's claims start from its cursor in a blast, and from the blast's first recipient at least this often
#: (retries that came due, recipients given back).
RESCAN_S = 5.0
#: Longest backoff of a transient error.
MAX_BACKOFF_S = 300.0
#: Meta's "number being upgraded / in maintenance": that number holds its sending, nobody fails.
NUMBER_UPGRADING = 131057
#: A running local-time blast's chunks are queued this long before its next due group's time, and wait for it on
#: the clock, so that the group's first request leaves without the scheduler's wake-up, the queue and the chunk's
#: start on its path.
GROUP_AHEAD_S = 0.3
#: The chunk id of a chunk queued ahead of its group starts so (other ids are hex; old daemons run it as any).
AHEAD_PREFIX = "ahead-"


def page_size(rate: float) -> int:
    """Recipients read per page: about 0.3 s of sending, 20..250."""
    return int(min(250, max(20, rate * 0.3)))


def chunk_size(rate: float) -> int:
    """Recipients per chunk: about CHUNK_SECONDS at the rate limit."""
    return max(page_size(rate), int(rate * CHUNK_SECONDS))


@dataclass(slots=True)
class ChunkReport:
    blast_id: int
    chunk_id: str
    claimed: int = 0
    requests: int = 0
    sent: int = 0
    failed: int = 0
    retry: int = 0
    unknown: int = 0
    skipped: int = 0
    stopped: str | None = None
    exhausted: bool = False
    error: str | None = None
    duration_s: float = 0.0

    def detail(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "requests": self.requests,
            "sent": self.sent,
            "failed": self.failed,
            "retry": self.retry,
            "unknown": self.unknown,
            "skipped": self.skipped,
            "stopped": self.stopped,
        }


@dataclass(slots=True)
class _Prepared:
    """One recipient of the chunk, ready to send; also the request pool's job for it."""

    runner: ChunkRunner
    row: claims.ClaimedRecipient
    components: list[dict[str, Any]]

    async def fire(self) -> None:
        await self.runner._send_one(self)

    def missed(self) -> None:
        self.runner._missed(self)


@dataclass(slots=True)
class _Page:
    rows: list[_Prepared] = field(default_factory=list)
    claimed: int = 0


class ChunkRunner:
    """Runs one chunk of one blast; `run()` never raises for send or database errors: it stops and reports."""

    def __init__(
        self, rt: Runtime, plan: claims.BlastPlan, chunk_id: str, token: str, lane: Lane | None = None
    ) -> None:
        self.rt = rt
        self.engine = rt.send_engine()
        self.plan = plan
        self.chunk_id = chunk_id
        self.token = token
        self.settings = rt.settings
        # A sender number of the blast's pool paces on its own limiter and sends with its own client; the
        # default sender (no lane) uses the runtime's, as before senders existed.
        self.sender: str | None = None if lane is None else lane.phone_number_id
        self.provider: WhatsAppProvider = rt.provider if lane is None else lane.provider
        self.limiter: RateLimiter = rt.limiter if lane is None else lane.limiter
        self.feeder = self.engine.feeder if lane is None else self.engine.feeder_for(lane.limiter)
        rate = rt.settings.BLAST_RATE_LIMIT if lane is None else lane.rate
        self.page_size = page_size(rate)
        self.budget = chunk_size(rate)
        self.report = ChunkReport(plan.id, chunk_id)
        self.tp = param_keys(plan.components, plan.parameter_format)
        self.header_format = header_format_of(plan.components)
        #: claimed and prepared, not marked yet
        self._todo: deque[_Prepared] = deque()
        #: marked SENDING, but their slot was missed: they wait for a new slot (no new mark, no new attempt)
        self._again: deque[_Prepared] = deque()
        #: jobs in the request pool (waiting for their slot, or in flight)
        self._held = 0
        #: results handed to the writer and not written yet
        self._unwritten = 0
        self._changed = asyncio.Event()
        self._halt_ev = rt.halts.event(plan.id)
        self._unsent: list[int] = []
        #: recipients whose SENDING mark failed half-way (database lost): none was sent, some may be SENDING
        self._unmarked: list[int] = []
        self._fatal_task: asyncio.Task[None] | None = None
        #: due groups up to this due time may be claimed (local-time blasts)
        self._accepted = plan.accepted_due_at

    # --- control
    # ---------------------------------------------------------------------------------------------
    def _stop_reason(self) -> str | None:
        if self.rt.halts.is_halted(self.plan.id):
            return self.rt.halts.reason(self.plan.id) or "halted"
        if self.rt.stopping.is_set():
            return "daemon stopping"
        if self.engine.writer.failing:
            return "database unreachable"
        if self.plan.valid_until is not None and utcnow() >= self.plan.valid_until:
            return "expired"
        return None

    # --- pages
    # -----------------------------------------------------------------------------------------------
    async def _claim(self, size: int, at: datetime | None = None) -> _Page:
        # From the daemon's cursor in this blast (its chunks claim successive ranges: the index range of rows
        # already moved on is not walked again), and from the start when the rows above it run out or every
        # RESCAN_S: recipients due for a retry, or given back, lie below it.
        if self.plan.due_times:  # a local-time blast: only the groups whose due time has come (and accepted)
            return await self._screen(
                await claims.claim_due_page(
                    self.plan.id,
                    self.token,
                    size,
                    await self._due_groups(at),
                    quiet=self.plan.quiet,
                    sender=self.sender,
                    at=at,
                )
            )
        now = time.monotonic()
        key = (self.plan.id, self.sender)
        cursor = self.engine.cursors.get(key)
        if cursor is None or now - cursor.scanned_at >= RESCAN_S:
            cursor = ClaimCursor(0, now)
        after = cursor.after_id
        sender = self.sender
        rows = await claims.claim_page(self.plan.id, self.token, size, after_id=after, sender=sender)
        if len(rows) == size:
            self.engine.cursors[key] = ClaimCursor(rows[-1].id, cursor.scanned_at)
        else:
            self.engine.cursors.pop(key, None)  # next time from the start
            if after:
                rows += await claims.claim_page(
                    self.plan.id, self.token, size - len(rows), after_id=0, sender=sender
                )
        return await self._screen(rows)

    async def _due_groups(self, at: datetime | None = None) -> list[datetime]:
        """The due groups this chunk may claim now (or `at`): their time has come and they are accepted. A group
        that has just come due is accepted here (or, found later than BLAST_MISSED_CUTOFF, pauses the blast) by the
        one conditional UPDATE of `blast_lifecycle.check_due_groups`, whichever daemon gets there first."""
        now = max(at, utcnow()) if at is not None else utcnow()
        come = [t for t in self.plan.due_times if t <= now]
        if come and (self._accepted is None or come[-1] > self._accepted):
            check = await blast_lifecycle.check_due_groups(
                self.plan.id, missed_cutoff_s=self.settings.BLAST_MISSED_CUTOFF, actor=self.rt.actor, now=now
            )
            if check.paused:
                with contextlib.suppress(RedisError, OSError):
                    await publish(self.settings, "paused", blast_id=self.plan.id)
            if not check.sendable:
                return []
            self._accepted = check.accepted_due_at
        accepted = self._accepted
        return [t for t in come if accepted is not None and t <= accepted]

    async def _screen(self, rows: list[claims.ClaimedRecipient]) -> _Page:
        page = _Page(claimed=len(rows))
        if not rows:
            return page
        blocked = await claims.suppressed_phones([r.phone for r in rows])
        if blocked:
            ids = [r.id for r in rows if r.phone in blocked]
            self.report.skipped += await claims.skip_recipients(
                self.plan.id, self.token, ids, "opted out (on the suppression list): not sent"
            )
        bad: dict[int, str] = {}
        for r in rows:
            if r.phone in blocked:
                continue
            values: dict[str, str] = {**self.plan.constants, **{str(k): str(v) for k, v in r.params.items()}}
            try:
                comps = build_send_components(self.tp, self.plan.parameter_format, values, self.header_format)
            except ValidationFailed as exc:
                bad[r.id] = f"{exc} (row data)"
                continue
            page.rows.append(_Prepared(self, r, comps))
        if bad:
            self.report.failed += await claims.fail_before_send(self.plan.id, self.token, bad)
        return page

    def _ahead_of(self) -> datetime | None:
        """The next due group's time, for a chunk queued ahead of it (None: any other chunk)."""
        if not self.plan.due_times or not self.chunk_id.startswith(AHEAD_PREFIX):
            return None
        now = utcnow()
        upcoming = next((t for t in self.plan.due_times if t > now), None)
        if upcoming is None or (upcoming - now).total_seconds() > 2 * GROUP_AHEAD_S:
            return None  # it sat in the queue for long: sent as any other chunk
        return upcoming

    async def run(self) -> ChunkReport:
        # A chunk queued ahead of its group accepts the group and leases its first page before the group's time,
        # then waits for that time on the clock: what is left at the time is the slot, the mark and the request.
        ahead_of = self._ahead_of()
        next_page: asyncio.Task[_Page] | None = asyncio.create_task(
            self._claim(min(self.page_size, self.budget), at=ahead_of)
        )
        if ahead_of is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.rt.stopping.wait(), (ahead_of - utcnow()).total_seconds())
        started = time.monotonic()
        deadline = started + CHUNK_SECONDS
        try:
            while True:
                if next_page is not None and (next_page.done() or len(self._todo) < self.page_size // 2):
                    page = await next_page
                    next_page = None
                    self.report.claimed += page.claimed
                    self.budget -= page.claimed
                    self._todo.extend(page.rows)
                    if page.claimed == 0:
                        self.report.exhausted = True
                    elif self.budget > 0 and time.monotonic() < deadline and self._stop_reason() is None:
                        next_page = asyncio.create_task(self._claim(min(self.page_size, self.budget)))
                reason = self._stop_reason()
                if reason is not None:
                    self.report.stopped = reason
                    break
                if self._todo or self._again:
                    await self._send_group()
                elif next_page is None:
                    if self._held == 0:
                        break  # every recipient claimed was sent (or its result is on its way to the writer)
                    self._changed.clear()
                    await self._changed.wait()  # a request ended, or a missed slot came back
        except (RedisError, OSError) as exc:
            self.report.stopped = self.report.error = f"Redis unreachable: {exc}"
            log.warning(
                "blast %s chunk %s: stopped sending, Redis unreachable (%s)", self.plan.id, self.chunk_id, exc
            )
        except Exception as exc:
            self.report.stopped = self.report.error = f"{type(exc).__name__}: {exc}"
            if is_outage(exc):
                log.warning(
                    "blast %s chunk %s: stopped sending, database unreachable (%s: %s)",
                    self.plan.id,
                    self.chunk_id,
                    type(exc).__name__,
                    exc,
                )
            else:
                log.exception("blast %s chunk %s: stopped on an error", self.plan.id, self.chunk_id)
        finally:
            if next_page is not None:
                with contextlib.suppress(Exception):
                    page = await next_page
                    self.report.claimed += page.claimed
                    self._unsent.extend(p.row.id for p in page.rows)
            await self._drain()
            if self._unmarked:
                await self._unmark()
            if self._unsent:
                with contextlib.suppress(Exception):
                    await claims.release_leases(self.token, self._unsent)
            if self._fatal_task is not None:
                with contextlib.suppress(Exception):
                    await self._fatal_task
        self.report.duration_s = time.monotonic() - started
        return self.report

    async def _send_group(self) -> None:
        """Take slots for what is waiting (missed slots first), mark the new recipients SENDING in one statement,
        and hand every one to the request pool at its slot."""
        slots = await self.feeder.take(len(self._again) + len(self._todo), self._halt_ev)
        if not slots:
            return
        n_again = min(len(slots), len(self._again))
        jobs = [self._again.popleft() for _ in range(n_again)]
        fresh = [self._todo.popleft() for _ in range(min(len(slots) - n_again, len(self._todo)))]
        if fresh:
            ids = [p.row.id for p in fresh]
            try:
                marked = await claims.mark_sending(
                    self.plan.id, self.token, ids, timeout_s=self.settings.WHATSAPP_TIMEOUT_S
                )
            except BaseException:
                # The UPDATE may have committed before the connection broke: put back what it marked.
                self._unmarked.extend(ids)
                raise
            jobs.extend(p for p in fresh if p.row.id in marked)  # a lost lease is never sent
        pool = self.engine.pool
        for job, at in zip(jobs, slots, strict=False):
            self._held += 1
            pool.submit(at, job)

    def _missed(self, p: _Prepared) -> None:
        """The request pool could not use this recipient's slot in time: it waits for a new one."""
        self._held -= 1
        self._again.append(p)
        self._changed.set()

    async def _drain(self) -> None:
        """After the last group: every job in the pool ends (stopped ones write PENDING), recipients marked but
        never sent go back to PENDING, the claimed rest is released, and the results are written."""
        while self._held:
            self._changed.clear()
            await self._changed.wait()
        while self._again:  # marked SENDING, slot missed, and the chunk stopped: not sent
            p = self._again.popleft()
            self._result(p.row.id, R.PENDING)
        self._unsent.extend(p.row.id for p in self._todo)
        self._todo.clear()
        deadline = time.monotonic() + (20.0 if self.rt.stopping.is_set() else 120.0)
        while self._unwritten > 0:
            if time.monotonic() > deadline:
                log.error(
                    "blast %s chunk %s: %s results could not be written; recovery marks them UNKNOWN",
                    self.plan.id,
                    self.chunk_id,
                    self._unwritten,
                )
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)

    def written(self, n: int) -> None:
        """The result writer wrote `n` of this chunk's results."""
        self._unwritten -= n
        self._changed.set()

    # --- one request
    # -----------------------------------------------------------------------------------------
    async def _send_one(self, p: _Prepared) -> None:
        try:
            await self._request(p)
        except Exception:  # never leave the pool's worker: the recipient stays SENDING; recovery decides
            log.exception("blast %s: recipient %s not handled", self.plan.id, p.row.id)
        finally:
            self._held -= 1
            self._changed.set()

    async def _request(self, p: _Prepared) -> None:
        row = p.row
        if self._stop_reason() is not None:
            # Not sent: back to PENDING (a cancelled blast's leftovers are cancelled after the chunk).
            self._result(row.id, R.PENDING, next_attempt_at=None)
            return
        attempt = row.attempts + 1
        try:
            result: SendResult = await self.provider.send_template(
                to=row.phone,
                template=self.plan.template,
                language=self.plan.language,
                components=p.components,
                callback_data=callback_data(self.plan.id, row.id, attempt),
                category=self.plan.category,
            )
        except Exception as exc:  # a provider must not raise; if it does, the request may have left
            log.exception("provider raised for recipient %s (%s)", row.id, mask_phone(row.phone))
            self.report.requests += 1
            self.report.unknown += 1
            self._result(row.id, R.UNKNOWN, error_text=f"{type(exc).__name__}: {exc}")
            return
        self.report.requests += 1
        if isinstance(result, SendAccepted):
            self.rt.streaks.accepted(self.plan.id)
            self.report.sent += 1
            self._result(row.id, R.SENT, wamid=result.wamid, wa_id=result.wa_id)
            return
        assert isinstance(result, SendFailed)
        await self._on_error(p, attempt, result.error)

    async def _on_error(self, p: _Prepared, attempt: int, err: GraphError) -> None:
        row = p.row
        now = utcnow()
        cls = err.error_class
        if cls is ErrorClass.BLAST_FATAL:
            # Halt first, synchronously: requests waiting for their slot see it before they leave.
            if self.rt.halts.halt(self.plan.id, err.meaning):
                self._fatal_task = asyncio.create_task(self._pause(err.meaning, err.code))
            self.report.retry += 1
            self._result(row.id, R.PENDING, error_code=err.code, error_text=err.meaning)
            return
        if cls is ErrorClass.UNKNOWN_OUTCOME:
            self.report.unknown += 1
            self._result(row.id, R.UNKNOWN, error_code=err.code, error_text=err.meaning)
            return
        if cls is ErrorClass.RECIPIENT_PERMANENT:
            self.report.failed += 1
            if err.opted_out:
                with contextlib.suppress(Exception):
                    await suppression.opt_out_131050([row.phone], actor=self.rt.actor)
            log.debug("recipient %s (%s) failed: %s", row.id, mask_phone(row.phone), err.meaning)
            self._result(row.id, R.FAILED, error_code=err.code, error_text=err.meaning)
            if err.may_be_systemic:
                self._note_systemic(err)
            return
        # retry later
        self.report.retry += 1
        if err.code == NUMBER_UPGRADING:
            # The number is being upgraded (e.g. to 1,000 msg/s): hold its sending, in every daemon, for a
            # minute; the recipient waits as long and is never failed for it.
            with contextlib.suppress(RedisError, OSError):
                await self.limiter.hold(UPGRADE_HOLD_S)
            if self.sender is not None:
                log.info(
                    "sender %s is being upgraded (131057): its sending waits %.0f s",
                    self.sender,
                    UPGRADE_HOLD_S,
                )
            self._result(
                row.id,
                R.PENDING,
                error_code=err.code,
                error_text=err.meaning,
                next_attempt_at=now + timedelta(seconds=UPGRADE_HOLD_S + random.uniform(0, 2)),
            )
            return
        if err.throttled:
            with contextlib.suppress(RedisError, OSError):
                await self.limiter.slow_down()
            wait_s = max(1.0, err.retry_after_s or 1.0) + random.uniform(0, 0.5)
        elif err.pair_rate:
            n = 1
            with contextlib.suppress(RedisError, OSError):
                key = self.settings.key("pair", row.id)
                n = int(await self.rt.redis.incr(key))
                await self.rt.redis.expire(key, 600)
            wait_s = pair_rate_backoff_s(n - 1)
        else:
            if err.code is not None and attempt >= MAX_TRANSIENT_ATTEMPTS:
                self.report.retry -= 1
                self.report.failed += 1
                self._result(
                    row.id,
                    R.FAILED,
                    error_code=err.code,
                    error_text=f"{err.meaning} (gave up after {attempt} attempts)",
                )
                return
            base = err.retry_after_s or 2.0
            wait_s = min(MAX_BACKOFF_S, base * 2 ** max(0, min(attempt - 1, 10))) * random.uniform(0.8, 1.2)
        self._result(
            row.id,
            R.PENDING,
            error_code=err.code,
            error_text=err.meaning,
            next_attempt_at=claims.quiet_retry_at(self.plan, row.zone, now + timedelta(seconds=wait_s)),
        )

    def _note_systemic(self, err: GraphError) -> None:
        """Count a maybe-systemic failure; BLAST_SYSTEMIC_ERROR_STREAK of them in a row pause the blast.

        The recipients of the run stay FAILED (Meta refused them; the operator's retry sends them again once the
        blast is fixed), but nobody else is tried: the halt is set before any await, like a blast-fatal error.
        """
        limit = self.settings.BLAST_SYSTEMIC_ERROR_STREAK
        trip = self.rt.streaks.failed(self.plan.id, err.code, err.meaning, limit=limit)
        if trip is None:
            return
        reason = (
            f"{trip.count} recipients in a row failed with {trip.meaning} "
            f"(BLAST_SYSTEMIC_ERROR_STREAK={limit}: the blast's shared data is probably wrong); "
            "fix it, resume, then retry the failed recipients"
        )
        if self.rt.halts.halt(self.plan.id, reason):
            self._fatal_task = asyncio.create_task(self._pause(reason, trip.code))

    async def _pause(self, reason: str, code: int | None) -> None:
        try:
            if await blast_lifecycle.pause_for_error(
                self.plan.id, reason=reason, code=code, actor=self.rt.actor
            ):
                await publish(self.settings, "paused", blast_id=self.plan.id)
        except Exception:
            log.exception("blast %s: could not record the pause (%s)", self.plan.id, reason)

    # --- results
    # ---------------------------------------------------------------------------------------------
    def _result(
        self,
        recipient_id: int,
        to: RecipientStatus,
        *,
        wamid: str | None = None,
        wa_id: str | None = None,
        error_code: int | None = None,
        error_text: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """One recipient's outcome, for the daemon's writer (written under this chunk's lease)."""
        self._add(
            SendOutcome(
                recipient_id,
                self.plan.id,
                to,
                wamid=wamid,
                wa_id=wa_id,
                error_code=error_code,
                error_text=error_text,
                next_attempt_at=next_attempt_at,
                lease_owner=self.token,
            )
        )

    def _add(self, outcome: SendOutcome) -> None:
        """Hand a result to the daemon's writer (written under this chunk's lease)."""
        self._unwritten += 1
        self.engine.writer.add(outcome, self)

    async def _unmark(self) -> None:
        """SENDING -> PENDING for the recipients of a group whose SENDING mark failed (none of them was sent),
        retried like the final write; otherwise recovery would turn them UNKNOWN when their lease runs out."""
        deadline = time.monotonic() + (20.0 if self.rt.stopping.is_set() else 120.0)
        delay = 0.2
        while True:
            try:
                n = await claims.unmark_sending(self.plan.id, self.token, self._unmarked)
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.error(
                        "blast %s chunk %s: %s recipients may stay SENDING (%s); recovery marks them UNKNOWN",
                        self.plan.id,
                        self.chunk_id,
                        len(self._unmarked),
                        exc,
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if n:
                log.info(
                    "blast %s chunk %s: %s recipients marked but not sent -> PENDING",
                    self.plan.id,
                    self.chunk_id,
                    n,
                )
            self._unsent.extend(self._unmarked)
            self._unmarked = []
            return


def summarize(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)


async def finish_chunk(rt: Runtime, report: ChunkReport) -> BlastStatus | None:
    """After a chunk: cancel leftovers of a cancelled blast, expire a blast past its valid-until, and finish
    the blast if nothing is left PENDING or SENDING."""
    await blast_lifecycle.cancel_leftovers(report.blast_id)
    if report.exhausted or report.stopped in (None, "expired"):
        await blast_lifecycle.expire_if_due(report.blast_id)
    return await blast_lifecycle.finish_if_done(report.blast_id, actor=rt.actor)
