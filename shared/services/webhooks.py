"""Provides the webhook pipeline behind the daemon's POST /webhook: signature check, the durable inbox (group
commit: a 200 means the raw body is stored), parsing Meta's payloads, and the applier that turns stored events
into forward-only recipient statuses, opt-outs and template changes, in batches.

The HTTP handler (daemon/http/webhook.py) only checks, stores and acknowledges; everything here after
`EventWriter.store` runs later in `run_applier`, so a slow database never delays Meta's acknowledgement by
more than one INSERT.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import json
import logging
import re
import socket
import time
import unicodedata
from collections import Counter as TallyCounter
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from shared import metrics
from shared.clock import utcnow
from shared.config import Settings, get_settings
from shared.errors import InvalidTransition, NotFound
from shared.models import OrphanStatus, Recipient, Template, WebhookEvent
from shared.notify import publish
from shared.outage import OutageLog, is_outage
from shared.parsing.phones import mask_phone
from shared.services import delivery, failure_rate, pricing, suppression, template_sync, transitions
from shared.services.delivery import DeliveryUpdate, Pricing
from shared.status import BlastStatus
from shared.whatsapp.errors import classify_webhook_error, rule_for

log = logging.getLogger(__name__)

#: A webhook POST waits at most this long for its row to be stored; then it is answered 503 and Meta retries.
STORE_TIMEOUT_S = 10.0
#: Events applied per transaction by the applier, parsed PARSE_SLICE at a time between yields to the loop.
APPLY_BATCH = 300
PARSE_SLICE = 50
#: An event failing this many times is set aside (processed, its error kept) so that it cannot block others.
MAX_ATTEMPTS = 5
#: Orphan statuses are retried after 1, 2, 4 … s, at most this far apart, until they expire.
ORPHAN_MAX_BACKOFF_S = 300.0
ORPHAN_BATCH = 1000
#: How often the applier looks for due orphans and purges old rows.
ORPHAN_PASS_S = 1.0
PURGE_PASS_S = 60.0
PURGE_BATCH = 5000
#: Webhook failures per blast are kept this long in Redis (the auto-pause only needs recent ones).
FAILURES_TTL_S = 7 * 24 * 3600

SignatureCheck = Literal["ok", "missing", "invalid"]


# ----------------------------------------------------------------------------------------------------------
# signature, callback data
# ----------------------------------------------------------------------------------------------------------


def sign(secret: str | bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def check_signature(secret: str | bytes | None, body: bytes, header: str | None) -> SignatureCheck:
    """Check Meta's signature over the raw body in constant time (never over re-serialised JSON).

    Returns:
        "missing" (no header, or no app secret configured: nothing can be trusted), "invalid" or "ok".
    """
    if not header:
        return "missing"
    if not secret:
        return "invalid"
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.digest(key, body, "sha256").hex().encode()  # one-shot HMAC (C), same bytes as `sign`
    given = header.strip().encode("ascii", "replace")
    if given[:7].lower() != b"sha256=":
        return "invalid"
    return "ok" if hmac.compare_digest(expected, given[7:].lower()) else "invalid"


@dataclass(frozen=True, slots=True)
class CallbackRef:
    """What the sender put in `biz_opaque_callback_data`: which recipient row (and attempt) a message is."""

    blast_id: int | None
    recipient_id: int
    attempt: int | None = None


def format_callback_data(blast_id: int, recipient_id: int, attempt: int) -> str:
    """The `biz_opaque_callback_data` the sender should attach to each message."""
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
        number = _int(raw)
        if name is not None and number is not None and number >= 0:
            found[name] = number
    if "recipient_id" not in found:
        return None
    return CallbackRef(found.get("blast_id"), found["recipient_id"], found.get("attempt"))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**62 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) < 19:
            return int(text)
    return None


# ----------------------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusItem:
    update: DeliveryUpdate
    #: E.164 from recipient_id (the user's wa_id), when it is one.
    phone: str | None
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class OptOut:
    phone: str
    source: str
    reason: str


@dataclass(slots=True)
class Parsed:
    """What one webhook body asks for."""

    statuses: list[StatusItem] = field(default_factory=list)
    opt_outs: list[OptOut] = field(default_factory=list)
    opt_ins: list[str] = field(default_factory=list)
    template_events: list[dict[str, Any]] = field(default_factory=list)
    quality_events: list[dict[str, Any]] = field(default_factory=list)
    category_events: list[dict[str, Any]] = field(default_factory=list)
    kinds: TallyCounter[str] = field(default_factory=TallyCounter)
    problems: list[str] = field(default_factory=list)


def opt_out_words(text: str) -> frozenset[str]:
    """A comma list of settings as the normalised set `is_opt_out_text` compares with."""
    return frozenset(w for w in (_norm_text(part) for part in text.split(",")) if w)


def _norm_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().strip(".!?¡¿,;:'\"()[]*-_~ \t\r\n")
    return " ".join(text.split()).casefold()


def is_opt_out_text(text: str, words: frozenset[str]) -> bool:
    """True when a whole inbound message is one of the opt-out keywords ("Stop", " BERHENTI! " …)."""
    return len(text) <= 64 and _norm_text(text) in words


def _timestamp(value: Any) -> datetime:
    seconds = _int(value)
    if seconds is None or not 0 < seconds < 10**11:
        return utcnow()
    return datetime.fromtimestamp(seconds, UTC)


def _str(value: Any, limit: int = 512) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def parse_body(text: str, *, keywords: frozenset[str], payloads: frozenset[str]) -> Parsed:
    """Read one stored webhook body; never raises (what it cannot use is listed in `problems`)."""
    out = Parsed()
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        out.kinds["malformed"] += 1
        out.problems.append("body is not JSON")
        return out
    try:
        _parse_object(obj, out, keywords, payloads)
    except Exception as exc:  # a shape no rule foresaw: keep what was read, report the rest
        out.kinds["malformed"] += 1
        out.problems.append(f"unreadable payload ({type(exc).__name__})")
    return out


def _parse_object(obj: Any, out: Parsed, keywords: frozenset[str], payloads: frozenset[str]) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("entry"), list):
        out.kinds["other"] += 1
        out.problems.append("not a WhatsApp Business Account notification")
        return
    if obj.get("object") not in (None, "whatsapp_business_account"):
        out.kinds["other"] += 1
        out.problems.append(f"object {str(obj.get('object'))[:40]!r} ignored")
        return
    for entry in obj["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            out.kinds["malformed"] += 1
            continue
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                out.kinds["malformed"] += 1
                continue
            kind = change.get("field")
            value: dict[str, Any] = change["value"]
            if kind == "messages":
                _parse_messages(value, out, keywords, payloads)
            elif kind == "message_template_status_update":
                out.kinds["template_status"] += 1
                out.template_events.append(value)
            elif kind == "message_template_quality_update":
                out.kinds["template_quality"] += 1
                out.quality_events.append(value)
            elif kind == "template_category_update":
                out.kinds["template_category"] += 1
                out.category_events.append(value)
            elif kind == "user_preferences":
                _parse_preferences(value, out)
            else:
                out.kinds["other"] += 1


def _parse_messages(
    value: dict[str, Any], out: Parsed, keywords: frozenset[str], payloads: frozenset[str]
) -> None:
    for item in value.get("statuses") or []:
        status = _parse_status(item)
        if status is None:
            out.kinds["malformed"] += 1
            continue
        out.kinds[f"status_{status.update.status}"] += 1
        out.statuses.append(status)
    for message in value.get("messages") or []:
        if not isinstance(message, dict):
            out.kinds["malformed"] += 1
            continue
        out.kinds["message_inbound"] += 1
        phone = suppression.wa_id_to_phone(str(message.get("from") or ""))
        if phone is None:
            continue
        kind = message.get("type")
        if kind == "text":
            body = (message.get("text") or {}).get("body")
            if isinstance(body, str) and is_opt_out_text(body, keywords):
                out.opt_outs.append(OptOut(phone, "keyword", f"replied {_norm_text(body).upper()!r}"))
        elif kind == "button":
            payload = (message.get("button") or {}).get("payload")
            if isinstance(payload, str) and _norm_text(payload) in payloads:
                out.opt_outs.append(OptOut(phone, "quick_reply", f"tapped {payload[:40]!r}"))
        elif kind == "interactive":
            reply = (message.get("interactive") or {}).get("button_reply") or {}
            reply_id = reply.get("id") if isinstance(reply, dict) else None
            if isinstance(reply_id, str) and _norm_text(reply_id) in payloads:
                out.opt_outs.append(OptOut(phone, "quick_reply", f"tapped {reply_id[:40]!r}"))
    for error in value.get("errors") or []:
        if isinstance(error, dict):
            out.problems.append(f"Meta reported error {error.get('code')}: {str(error.get('title'))[:120]}")


def _parse_status(item: Any) -> StatusItem | None:
    if not isinstance(item, dict):
        return None
    wamid, status = _str(item.get("id"), 128), item.get("status")
    if wamid is None or status not in ("sent", "delivered", "read", "played", "failed"):
        return None
    ref = parse_callback_data(item.get("biz_opaque_callback_data"))
    code: int | None = None
    text: str | None = None
    opted_out = False
    if status == "failed":
        errors = item.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
        if first is not None:
            error = classify_webhook_error(first)
            code, text, opted_out = error.code, error.meaning[:1000], error.opted_out
        else:
            text = "Meta reported the message failed without an error"
    update = DeliveryUpdate(
        wamid=wamid,
        status=status,
        at=_timestamp(item.get("timestamp")),
        recipient_id=ref.recipient_id if ref is not None else None,
        attempt=ref.attempt if ref is not None else None,
        error_code=code,
        error_text=text,
        pricing=parse_pricing(item.get("pricing")),
    )
    return StatusItem(update, suppression.wa_id_to_phone(str(item.get("recipient_id") or "")), opted_out)


def parse_pricing(value: Any) -> Pricing | None:
    """A status's `pricing` object; None when it has none. Billable means charged: type "regular" (or, without
    a type, Meta's deprecated `billable` flag).
    """
    if not isinstance(value, dict):
        return None

    def word(key: str, limit: int) -> str | None:
        text = _str(value.get(key), limit)
        return text.strip().lower() or None if text is not None else None

    category, kind, model = word("category", 32), word("type", 32), word("pricing_model", 8)
    flag = value.get("billable")
    billable = kind == "regular" if kind is not None else flag if isinstance(flag, bool) else None
    if category is None and kind is None and model is None and billable is None:
        return None
    return Pricing(category, kind, model.upper() if model else None, billable)


def _parse_preferences(value: dict[str, Any], out: Parsed) -> None:
    for pref in value.get("user_preferences") or []:
        if not isinstance(pref, dict):
            out.kinds["malformed"] += 1
            continue
        out.kinds["user_preferences"] += 1
        phone = suppression.wa_id_to_phone(str(pref.get("wa_id") or ""))
        choice = str(pref.get("value") or "").strip().lower()
        category = str(pref.get("category") or "marketing_messages")
        if phone is None:
            continue
        if choice == "stop":
            out.opt_outs.append(OptOut(phone, "user_preferences", f"stopped {category[:40]}"))
        elif choice == "resume":
            out.opt_ins.append(phone)


# ----------------------------------------------------------------------------------------------------------
# the durable inbox: group commit
# ----------------------------------------------------------------------------------------------------------


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
                    ok = await self._insert_batch(partial(_insert_events_pg, con))
                    if not ok:
                        return  # the connection may be broken: the pool gives a fresh one next time
        except Exception as exc:  # acquiring failed: the database is away
            log.warning("could not store %s webhook events: %s", len(self._pending), _reason(exc))
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
            log.warning("could not store %s webhook events: %s", len(batch), _reason(exc))
            for _, _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return False
        self.batches += 1
        self.rows += len(batch)
        for wake in _APPLIER_WAKES:  # this process's appliers apply them now, not at their next idle poll
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


async def _insert_events_pg(con: Any, rows: Sequence[tuple[str, datetime]]) -> None:
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


# ----------------------------------------------------------------------------------------------------------
# failure counts for the auto-pause
# ----------------------------------------------------------------------------------------------------------


async def note_failures(
    settings: Settings, failures_by_blast: Mapping[int, int], client: aioredis.Redis | None = None
) -> list[int]:
    """Feed failures reported by status webhooks into each blast's failure-rate window (Redis key
    `{prefix}:failwin:{blast_id}`, see shared.services.failure_rate) and pause a PROCESSING blast whose window
    trips. Opt-outs (131050) are not passed here: they are the user's choice, not a fault of the blast.

    Returns:
        The blasts this call paused.

    Raises:
        redis.exceptions.RedisError: Redis unreachable.
    """
    paused: list[int] = []
    for blast_id, n in failures_by_blast.items():
        if n <= 0:
            continue
        window = await failure_rate.note_results(settings, blast_id, failed=n, client=client)
        if not window.tripped:
            continue
        reason = failure_rate.pause_reason(window)
        try:
            moved = await transitions.transition_blast(
                blast_id,
                BlastStatus.PAUSED,
                actor=daemon_actor(),
                action="pause",
                sources=[BlastStatus.PROCESSING],
                detail={"reason": reason},
                values={"last_error": reason},
            )
        except (InvalidTransition, NotFound):
            continue  # finished, cancelled or already paused: nothing to stop
        if moved:
            metrics.BLASTS_PAUSED_BY_ERROR.inc()
            await failure_rate.reset_window(settings, blast_id, client=client)
            await publish(settings, "paused", blast_id=blast_id)
            paused.append(blast_id)
    return paused


# ----------------------------------------------------------------------------------------------------------
# templates
# ----------------------------------------------------------------------------------------------------------


async def apply_template_event(value: Mapping[str, Any], *, settings: Settings) -> list[int]:
    """Apply one `message_template_status_update` (shared.services.template_sync mirrors the status and pauses
    the blasts of a template that can no longer be sent).

    Returns:
        The blasts paused.
    """
    result = await template_sync.apply_template_event(value, settings=settings, actor=daemon_actor())
    if result is None:
        return []
    if result.old != result.new:
        metrics.TEMPLATE_UPDATES.labels(result.new.value).inc()
    return [p.blast_id for p in result.paused_blasts]


def daemon_actor() -> str:
    """Who the audit log names for what the webhooks change."""
    return f"daemon@{socket.gethostname()}"


async def apply_quality_event(value: Mapping[str, Any]) -> None:
    meta_id = value.get("message_template_id")
    score = value.get("new_quality_score")
    if meta_id is None or not isinstance(score, str):
        return
    await Template.filter(meta_id=str(meta_id)).update(quality_score=score[:16], updated_at=utcnow())


# ----------------------------------------------------------------------------------------------------------
# applying
# ----------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ApplyReport:
    events: int = 0
    statuses: int = 0
    applied: int = 0
    ignored: int = 0
    orphaned: int = 0
    reconciled: int = 0
    expired: int = 0
    opt_outs: int = 0
    failed_events: int = 0
    failures_by_blast: dict[int, int] = field(default_factory=dict)
    paused_blasts: list[int] = field(default_factory=list)
    #: (pricing category, phone) of the billable deliveries applied (for blast_billable_messages_total).
    billable: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Config:
    keywords: frozenset[str]
    payloads: frozenset[str]
    orphan_retention_s: float
    event_retention_s: float

    @classmethod
    def of(cls, settings: Settings) -> _Config:
        return cls(
            opt_out_words(settings.BLAST_OPT_OUT_KEYWORDS),
            opt_out_words(settings.BLAST_OPT_OUT_PAYLOADS),
            settings.BLAST_ORPHAN_STATUS_RETENTION_S,
            settings.BLAST_WEBHOOK_EVENT_RETENTION_S,
        )


def _counted_failures(result: delivery.DeliveryResult) -> dict[int, int]:
    """Failures that say something about the blast: opt-outs (131050) are the user's choice, not counted."""
    out: dict[int, int] = defaultdict(int)
    for blast_id, codes in result.failure_codes.items():
        for code, n in codes.items():
            if not rule_for(code, None).opted_out:
                out[blast_id] += n
    return dict(out)


async def _apply_statuses(
    items: Sequence[StatusItem], tx: BaseDBAsyncClient, report: ApplyReport, *, actor: str
) -> list[DeliveryUpdate]:
    """Apply statuses and their opt-outs in `tx`; returns the updates that matched no recipient."""
    if not items:
        return []
    result = await delivery.apply_delivery_updates([i.update for i in items], conn=tx)
    report.statuses += len(items)
    report.applied += result.applied
    report.ignored += result.ignored
    report.billable.extend(result.billable)
    for blast_id, n in _counted_failures(result).items():
        report.failures_by_blast[blast_id] = report.failures_by_blast.get(blast_id, 0) + n
    opted = [i for i in items if i.opted_out]
    if opted:
        # The recipient row's number is the one the operator knows; Meta's wa_id may differ (Brazil, Mexico).
        rows = (
            await Recipient.filter(wamid__in=[i.update.wamid for i in opted])
            .using_db(tx)
            .values_list("wamid", "phone")
        )
        by_wamid = dict(rows)
        ids = [i.update.recipient_id for i in opted if i.update.recipient_id is not None]
        by_id = (
            dict(await Recipient.filter(id__in=ids).using_db(tx).values_list("id", "phone")) if ids else {}
        )
        phones: list[str] = []
        for i in opted:
            phone = by_wamid.get(i.update.wamid) or by_id.get(i.update.recipient_id or -1)
            phones.extend(p for p in (phone, i.phone) if p)
        added = await suppression.opt_out_131050(phones, actor=actor, conn=tx)
        report.opt_outs += len(added)
    return result.unmatched


async def _park_orphans(
    unmatched: Sequence[DeliveryUpdate],
    phones: Mapping[str, str | None],
    tx: BaseDBAsyncClient,
    retention_s: float,
) -> None:
    now = utcnow()
    await OrphanStatus.bulk_create(
        [
            OrphanStatus(
                wamid=u.wamid,
                status=u.status,
                at=u.at,
                recipient_id=u.recipient_id,
                phone=phones.get(u.wamid),
                error_code=u.error_code,
                error_text=u.error_text,
                **(delivery.pricing_values(u.pricing) if u.pricing is not None else {}),
                received_at=now,
                next_try_at=now + timedelta(seconds=1),
                expires_at=now + timedelta(seconds=retention_s),
                attempts=0,
            )
            for u in unmatched
        ],
        using_db=tx,
    )


async def _apply_parsed(
    parsed: Sequence[Parsed], tx: BaseDBAsyncClient, report: ApplyReport, cfg: _Config, *, actor: str
) -> None:
    statuses = [s for p in parsed for s in p.statuses]
    unmatched = await _apply_statuses(statuses, tx, report, actor=actor)
    if unmatched:
        phones = {s.update.wamid: s.phone for s in statuses}
        await _park_orphans(unmatched, phones, tx, cfg.orphan_retention_s)
        report.orphaned += len(unmatched)
    by_source: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in parsed:
        for o in p.opt_outs:
            by_source[(o.source, o.reason)].append(o.phone)
    for (source, reason), phones_list in by_source.items():
        added = await suppression.suppress(phones_list, reason=reason, source=source, actor=actor, conn=tx)
        report.opt_outs += len(added)
        if added:
            metrics.OPT_OUTS.labels(source).inc(len(added))
    for p in parsed:
        for phone in p.opt_ins:
            await suppression.remove_opt_out(phone, actor=actor, conn=tx)


async def apply_pending(settings: Settings, *, limit: int = APPLY_BATCH) -> ApplyReport:
    """Apply up to `limit` stored events in one transaction (events other daemons hold are skipped on
    PostgreSQL). An event that breaks the batch is retried alone, then set aside after MAX_ATTEMPTS.
    """
    cfg = _Config.of(settings)
    report = ApplyReport()
    actor = daemon_actor()
    template_events: list[dict[str, Any]] = []
    quality_events: list[dict[str, Any]] = []
    category_events: list[dict[str, Any]] = []
    events: list[tuple[int, str]] = []
    parsed: list[Parsed] = []
    try:
        async with in_transaction() as tx:
            events = await _claim_events(tx, limit)
            if not events:
                return report
            parsed = []
            for start in range(0, len(events), PARSE_SLICE):
                # Parsing is CPU work on the loop that also acknowledges webhooks: let their handlers in.
                parsed.extend(
                    parse_body(body, keywords=cfg.keywords, payloads=cfg.payloads)
                    for _, body in events[start : start + PARSE_SLICE]
                )
                await asyncio.sleep(0)
            await _apply_parsed(parsed, tx, report, cfg, actor=actor)
            await _finish(events, parsed, tx, cfg)
    except Exception as exc:
        if not events:
            raise
        log.warning(
            "applying %s webhook events failed (%s); applying them one by one", len(events), _reason(exc)
        )
        return await _apply_one_by_one([event_id for event_id, _ in events], settings)
    report.events = len(events)
    kinds: TallyCounter[str] = TallyCounter()
    for p in parsed:
        kinds.update(p.kinds)
        template_events.extend(p.template_events)
        quality_events.extend(p.quality_events)
        category_events.extend(p.category_events)
    for kind, n in kinds.items():
        metrics.WEBHOOK_EVENTS.labels(kind).inc(n)
    await _after_commit(settings, report, template_events, quality_events, category_events)
    return report


#: The applier's claim on PostgreSQL (run with sorting off, see _claim_events).
CLAIM_PG = (
    "SELECT id, body FROM webhook_event WHERE processed_at IS NULL "
    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)


async def _claim_events(tx: BaseDBAsyncClient, limit: int) -> list[tuple[int, str]]:
    """The oldest unapplied events (id, body); on PostgreSQL locked, skipping those another daemon holds."""
    if tx.capabilities.dialect == "postgres":
        # The partial index webhook_event_pending gives the oldest pending rows in id order. When the statistics
        # say few rows are pending (they usually are, and a burst outruns autovacuum's ANALYZE), the planner
        # prefers a bitmap or sequential scan plus a sort, which reads and sorts the whole backlog, bodies
        # included, on every claim: exactly when a backlog builds up. Sorting is off for this one statement, so
        # the only plans left read in id order, and the partial index is the cheapest of them.
        await tx.execute_script("SET LOCAL enable_sort = off")
        _, rows = await tx.execute_query(CLAIM_PG, [limit])
        await tx.execute_script("SET LOCAL enable_sort TO DEFAULT")
        return [(int(r["id"]), str(r["body"])) for r in rows]
    query = WebhookEvent.filter(processed_at__isnull=True).order_by("id").limit(limit).using_db(tx)
    return [(int(i), str(b)) for i, b in await query.values_list("id", "body")]


async def _finish(
    events_done: Sequence[tuple[int, str]], parsed: Sequence[Parsed], tx: BaseDBAsyncClient, cfg: _Config
) -> None:
    now = utcnow()
    noted = [(e, p) for e, p in zip(events_done, parsed, strict=True) if p.problems]
    for e, p in noted:
        log.info("webhook event %s: %s", e[0], "; ".join(p.problems)[:300])
    ids = [e[0] for e in events_done]
    if cfg.event_retention_s <= 0:
        await WebhookEvent.filter(id__in=ids).using_db(tx).delete()
        return
    clean = [e[0] for e, p in zip(events_done, parsed, strict=True) if not p.problems]
    if clean and tx.capabilities.dialect == "postgres":
        # One array parameter instead of an IN list of hundreds (built and planned anew for every batch size).
        await tx.execute_query(
            "UPDATE webhook_event SET processed_at = $1, attempts = attempts + 1 WHERE id = ANY($2::bigint[])",
            [now, clean],
        )
    elif clean:
        await (
            WebhookEvent.filter(id__in=clean)
            .using_db(tx)
            .update(processed_at=now, attempts=F("attempts") + 1)
        )
    for e, p in noted:
        await (
            WebhookEvent.filter(id=e[0])
            .using_db(tx)
            .update(processed_at=now, attempts=F("attempts") + 1, error="; ".join(p.problems)[:1000])
        )


async def _apply_one_by_one(ids: Sequence[int], settings: Settings) -> ApplyReport:
    cfg = _Config.of(settings)
    total = ApplyReport()
    actor = daemon_actor()
    for event_id in ids:
        report = ApplyReport()
        parsed: Parsed | None = None
        try:
            async with in_transaction() as tx:
                found = [
                    (int(i), str(b))
                    for i, b in await WebhookEvent.filter(id=event_id, processed_at__isnull=True)
                    .using_db(tx)
                    .values_list("id", "body")
                ]
                if not found:
                    continue
                parsed = parse_body(found[0][1], keywords=cfg.keywords, payloads=cfg.payloads)
                await _apply_parsed([parsed], tx, report, cfg, actor=actor)
                await _finish(found, [parsed], tx, cfg)
        except Exception as exc:
            total.failed_events += 1
            await _note_attempt(event_id, exc)
            continue
        report.events = 1
        for kind, n in parsed.kinds.items():
            metrics.WEBHOOK_EVENTS.labels(kind).inc(n)
        await _after_commit(
            settings, report, parsed.template_events, parsed.quality_events, parsed.category_events
        )
        _merge(total, report)
    return total


async def _note_attempt(event_id: int, exc: BaseException) -> None:
    try:
        row = await WebhookEvent.get_or_none(id=event_id)
        if row is None:
            return
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "error": _reason(exc)[:1000]}
        if attempts >= MAX_ATTEMPTS:
            values["processed_at"] = utcnow()
            log.error("webhook event %s set aside after %s attempts: %s", event_id, attempts, _reason(exc))
        await WebhookEvent.filter(id=event_id).update(**values)
    except Exception as again:  # the database itself is away: the event stays pending, retried later
        log.warning("webhook event %s: could not record the failed attempt (%s)", event_id, _reason(again))


def _merge(total: ApplyReport, report: ApplyReport) -> None:
    total.events += report.events
    total.statuses += report.statuses
    total.applied += report.applied
    total.ignored += report.ignored
    total.orphaned += report.orphaned
    total.reconciled += report.reconciled
    total.expired += report.expired
    total.opt_outs += report.opt_outs
    total.failed_events += report.failed_events
    for b, n in report.failures_by_blast.items():
        total.failures_by_blast[b] = total.failures_by_blast.get(b, 0) + n
    total.paused_blasts.extend(report.paused_blasts)
    total.billable.extend(report.billable)


async def _after_commit(
    settings: Settings,
    report: ApplyReport,
    template_events: Sequence[dict[str, Any]],
    quality_events: Sequence[dict[str, Any]],
    category_events: Sequence[dict[str, Any]] = (),
) -> None:
    """Side effects outside the transaction: Redis counters, metrics, template changes (rare; a missed one is
    caught by the periodic template sync).
    """
    if report.orphaned:
        metrics.WEBHOOK_ORPHANS.labels("unmatched").inc(report.orphaned)
    if report.billable:
        try:
            await pricing.count_billable(report.billable)
        except Exception as exc:
            log.warning("billable messages not counted in the metrics: %s", _reason(exc))
    if report.failures_by_blast:
        metrics.MESSAGES.labels("failed_webhook").inc(sum(report.failures_by_blast.values()))
    if report.failures_by_blast:
        try:
            report.paused_blasts.extend(await note_failures(settings, report.failures_by_blast))
        except (RedisError, OSError) as exc:
            log.warning("could not publish webhook failures for the auto-pause: %s", _reason(exc))
    for value in template_events:
        try:
            report.paused_blasts.extend(await apply_template_event(value, settings=settings))
        except Exception as exc:
            log.warning("template event not applied (%s); the next template sync will catch up", _reason(exc))
    for value in quality_events:
        try:
            await apply_quality_event(value)
        except Exception as exc:
            log.warning("template quality event not applied: %s", _reason(exc))
    for value in category_events:
        try:
            await template_sync.apply_category_event(value)
        except Exception as exc:
            log.warning("template category event not applied (%s); the next sync will catch up", _reason(exc))


def _stored_pricing(o: OrphanStatus) -> Pricing | None:
    values = (o.pricing_category, o.pricing_type, o.pricing_model, o.billable)
    return None if all(v is None for v in values) else Pricing(*values)


async def retry_orphans(settings: Settings, *, limit: int = ORPHAN_BATCH) -> ApplyReport:
    """Try due orphan statuses again (their send result may have been written since); drop expired ones."""
    report = ApplyReport()
    now = utcnow()
    async with in_transaction() as tx:
        expired = await OrphanStatus.filter(expires_at__lte=now).using_db(tx).delete()
        report.expired = int(expired or 0)
        rows = await (
            OrphanStatus.filter(next_try_at__lte=now)
            .order_by("next_try_at")
            .limit(limit)
            .select_for_update(skip_locked=True)
            .using_db(tx)
        )
        if rows:
            items = [
                StatusItem(
                    DeliveryUpdate(
                        wamid=o.wamid,
                        status=o.status,
                        at=o.at,
                        recipient_id=o.recipient_id,
                        error_code=o.error_code,
                        error_text=o.error_text,
                        pricing=_stored_pricing(o),
                    ),
                    o.phone,
                    opted_out=o.error_code is not None and rule_for(o.error_code, None).opted_out,
                )
                for o in rows
            ]
            unmatched = await _apply_statuses(items, tx, report, actor=daemon_actor())
            still = {(u.wamid, u.status, u.at) for u in unmatched}
            done = [o.id for o in rows if (o.wamid, o.status, o.at) not in still]
            report.reconciled = len(done)
            if done:
                await OrphanStatus.filter(id__in=done).using_db(tx).delete()
            for o in rows:
                if (o.wamid, o.status, o.at) in still:
                    backoff = min(ORPHAN_MAX_BACKOFF_S, 2.0 ** (o.attempts + 1))
                    await (
                        OrphanStatus.filter(id=o.id)
                        .using_db(tx)
                        .update(attempts=o.attempts + 1, next_try_at=now + timedelta(seconds=backoff))
                    )
    if report.reconciled:
        metrics.WEBHOOK_ORPHANS.labels("reconciled").inc(report.reconciled)
        log.info("%s parked statuses matched their recipients", report.reconciled)
    if report.expired:
        metrics.WEBHOOK_ORPHANS.labels("expired").inc(report.expired)
        log.info("%s statuses matched no recipient and expired", report.expired)
    await _after_commit(settings, report, (), ())
    return report


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


#: The wake-up events of this process's running appliers (set when this process stores webhook events).
_APPLIER_WAKES: set[asyncio.Event] = set()
#: An idle applier polls for events stored by other daemons at most this far apart (doubling from `idle_s`).
IDLE_MAX_S = 0.4


async def run_applier(
    stop_event: asyncio.Event,
    *,
    settings: Settings | None = None,
    batch: int = APPLY_BATCH,
    idle_s: float = 0.05,
    on_batch: Callable[[ApplyReport], Awaitable[None] | None] | None = None,
) -> None:
    """Apply stored webhook events until `stop_event` is set: batches back to back while there is a backlog,
    an idle wait otherwise (from `idle_s` doubling to IDLE_MAX_S while nothing comes, cut short when this
    process stores events); due orphans every second, old rows purged every minute. Errors are logged and the
    loop goes on (a database outage just delays the events: they are stored).
    """
    settings = settings or get_settings()
    wake = asyncio.Event()
    _APPLIER_WAKES.add(wake)
    log.info("webhook applier started")
    try:
        await _apply_loop(stop_event, wake, settings, batch, idle_s, on_batch)
    finally:
        _APPLIER_WAKES.discard(wake)
    log.info("webhook applier stopped")


async def _apply_loop(
    stop_event: asyncio.Event,
    wake: asyncio.Event,
    settings: Settings,
    batch: int,
    idle_s: float,
    on_batch: Callable[[ApplyReport], Awaitable[None] | None] | None,
) -> None:
    last_orphans = last_purge = 0.0
    outage = OutageLog(log, "webhook applier", base_s=0.4, cap_s=5.0)
    wait = idle_wait = idle_s
    while not stop_event.is_set():
        wake.clear()
        busy = False
        try:
            report = await apply_pending(settings, limit=batch)
            busy = report.events > 0
            now = time.monotonic()
            if now - last_orphans >= ORPHAN_PASS_S:
                last_orphans = now
                orphans = await retry_orphans(settings)
                _merge(report, orphans)
            if now - last_purge >= PURGE_PASS_S:
                last_purge = now
                await purge_processed(settings)
            if on_batch is not None and (report.events or report.reconciled):
                result = on_batch(report)
                if inspect.isawaitable(result):
                    await result
            outage.ok()
            idle_wait = idle_s if report.events or report.reconciled else min(IDLE_MAX_S, idle_wait * 2)
            wait = idle_wait
        except Exception as exc:
            # The events are stored: an outage only delays them (logged once); anything else is logged each time.
            if is_outage(exc):
                wait = outage.failed(exc)
            else:
                log.warning("webhook applier: %s (retrying)", _reason(exc))
                wait = min(5.0, max(0.4, wait * 2))
        if busy:
            await asyncio.sleep(0)
            continue
        waiters = [asyncio.ensure_future(stop_event.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


__all__ = [
    "ApplyReport",
    "CallbackRef",
    "EventWriter",
    "OptOut",
    "Parsed",
    "StatusItem",
    "apply_pending",
    "apply_template_event",
    "backlog",
    "check_signature",
    "format_callback_data",
    "is_opt_out_text",
    "mask_phone",
    "note_failures",
    "opt_out_words",
    "parse_body",
    "parse_callback_data",
    "purge_processed",
    "retry_orphans",
    "run_applier",
    "sign",
]
