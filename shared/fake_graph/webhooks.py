"""Provides the fake's webhook emitter: signed status and template webhooks, late, doubled, out of order."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.fake_graph.state import TITLES, FakeState, FakeTemplate, ReceivedMessage

log = logging.getLogger(__name__)

#: `async def sink(raw_body, signature_header)`: receives webhooks in-process instead of over HTTP.
WebhookSink = Callable[[bytes, str], Awaitable[None]]

SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 Meta sends: `sha256=` + HMAC-SHA256 of the raw body keyed by the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    """Meta's bytes: compact JSON with non-ASCII escaped as \\uXXXX."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


@dataclass
class _Item:
    field: str
    value: dict[str, Any]
    done: asyncio.Future[None] | None = None


class WebhookEmitter:
    """Posts webhooks the way Meta does: signed, at least once, late, and not always in order.

    Args:
        state: the fake's state (knobs, log, counters).
        sink: deliver in-process to this callable instead of posting to `config.webhook_url`.
        workers: concurrent deliveries.
    """

    def __init__(self, state: FakeState, *, sink: WebhookSink | None = None, workers: int = 8) -> None:
        self.state = state
        self.sink = sink
        self._workers = workers
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._session: aiohttp.ClientSession | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending = 0

    @property
    def enabled(self) -> bool:
        return self.sink is not None or bool(self.state.config.webhook_url)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for _ in range(self._workers):
            self._tasks.append(asyncio.create_task(self._worker()))

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every scheduled webhook was delivered or given up (for tests)."""
        async with asyncio.timeout(timeout_s):
            await self._idle.wait()

    # --- scheduling ---------------------------------------------------------------------------------------
    def _step_s(self) -> float:
        cfg = self.state.config
        low = max(0.0, cfg.webhook_delay_ms - cfg.webhook_jitter_ms)
        high = max(low, cfg.webhook_delay_ms + cfg.webhook_jitter_ms)
        return self.state.rng.uniform(low, high) / 1000.0

    def emit(
        self, field: str, value: dict[str, Any], delay_s: float, done: asyncio.Future[None] | None = None
    ) -> None:
        """Queue one webhook change to go out after `delay_s`."""
        if not self.enabled:
            if done is not None and not done.done():
                done.set_result(None)
            return
        item = _Item(field, value, done)
        self._pending += 1
        self._idle.clear()
        if delay_s <= 0:
            self._queue.put_nowait(item)
        else:
            self.later(delay_s, lambda: self._queue.put_nowait(item))

    def later(self, delay_s: float, callback: Callable[[], object]) -> None:
        """Run `callback` after `delay_s`, unless the fake stops first."""
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay_s, fire)
        self._timers.add(handle)

    def message_statuses(self, msg: ReceivedMessage, fail_code: int | None) -> asyncio.Future[None] | None:
        """Schedule the statuses of one accepted message (sent, delivered, read; or failed).

        Returns:
            A future done once the first status was delivered, when `webhook_before_response` is on.
        """
        cfg = self.state.config
        if not self.enabled or not cfg.webhook_statuses:
            return None
        rng = self.state.rng
        events: list[str]
        if fail_code is not None:
            events = ["failed"]
        else:
            events = ["sent"]
            is_read = rng.random() < cfg.webhook_read_rate
            if not (is_read and rng.random() < cfg.webhook_skip_delivered_rate):
                events.append("delivered")
            if is_read:
                events.append("read")
        now = time.time()
        stamps = {name: int(now) + i for i, name in enumerate(events)}
        if len(events) > 1 and rng.random() < cfg.webhook_reorder_rate:
            events.reverse()
        first: asyncio.Future[None] | None = None
        delay = 0.0 if cfg.webhook_before_response else self._step_s()
        for i, name in enumerate(events):
            if i:
                delay += self._step_s()
            done: asyncio.Future[None] | None = None
            if i == 0 and cfg.webhook_before_response:
                done = first = asyncio.get_running_loop().create_future()
            status = self._status(msg, name, stamps[name], fail_code)
            self.emit("messages", status, delay, done)
            if rng.random() < cfg.webhook_duplicate_rate:
                self.emit("messages", status, delay + self._step_s())
        return first

    def _status(self, msg: ReceivedMessage, name: str, stamp: int, fail_code: int | None) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": msg.wamid,
            "status": name,
            "timestamp": str(stamp),
            "recipient_id": msg.wa_id,
        }
        if msg.callback_data is not None:
            status["biz_opaque_callback_data"] = msg.callback_data
        category = (msg.category or "utility").lower()
        if name in ("sent", "delivered"):
            status["conversation"] = {
                "id": f"conv{msg.seq:012d}",
                "expiration_timestamp": str(stamp + 86_400),
                "origin": {"type": category},
            }
            status["pricing"] = {
                "billable": True,
                "pricing_model": "PMP",
                "category": category,
                "type": "regular",
            }
        if name == "failed" and fail_code is not None:
            title = TITLES.get(fail_code, "Message failed")
            status["errors"] = [
                {
                    "code": fail_code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": title},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        return status

    def template_event(self, tpl: FakeTemplate, event: str, reason: str | None = None) -> None:
        """Schedule a `message_template_status_update` webhook for a template."""
        value: dict[str, Any] = {
            "event": event,
            "message_template_id": int(tpl.id) if tpl.id.isdigit() else tpl.id,
            "message_template_name": tpl.name,
            "message_template_language": tpl.language,
            "reason": reason or "NONE",
            "message_template_category": tpl.category,
        }
        if event == "REJECTED":
            value["rejection_info"] = {
                "reason": reason or "INVALID_FORMAT",
                "recommendation": "Fix the placeholders and submit again.",
            }
        if event == "DISABLED":
            value["disable_info"] = {"disable_date": int(time.time())}
        self.emit("message_template_status_update", value, self._step_s())

    def number_update(self, phone_number_id: str, event: str = "THROUGHPUT_UPGRADE") -> dict[str, Any]:
        """Schedule a `phone_number_quality_update` webhook for one of the fake's numbers; returns its value.

        THROUGHPUT_UPGRADE also moves the number to the HIGH level (1,000 msg/s) in the fake.
        """
        cfg = self.state.config
        if event == "THROUGHPUT_UPGRADE":
            if phone_number_id in cfg.extra_numbers:
                cfg.extra_numbers[phone_number_id] = "HIGH"
            elif phone_number_id == cfg.phone_number_id:
                cfg.throughput_level = "HIGH"
        display = cfg.display_phone_number
        if phone_number_id != cfg.phone_number_id:
            display = display[:-4] + phone_number_id[-4:]
        value: dict[str, Any] = {
            "display_phone_number": display,
            "phone_number_id": phone_number_id,
            "event": event,
            "current_limit": cfg.messaging_limit,
        }
        if event == "THROUGHPUT_UPGRADE":
            value["throughput_level"] = "HIGH"
        self.emit("phone_number_quality_update", value, self._step_s())
        return value

    # --- delivery -----------------------------------------------------------------------------------------
    def _envelope(self, field: str, values: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.state.config
        if field == "messages":
            value = {
                "messaging_product": "whatsapp",
                "metadata": {
                    "display_phone_number": cfg.display_phone_number,
                    "phone_number_id": cfg.phone_number_id,
                },
                "statuses": values,
            }
            changes = [{"value": value, "field": field}]
            return {
                "object": "whatsapp_business_account",
                "entry": [{"id": cfg.business_account_id, "changes": changes}],
            }
        changes = [{"value": v, "field": field} for v in values]
        entry = {"id": cfg.business_account_id, "time": int(time.time()), "changes": changes}
        return {"object": "whatsapp_business_account", "entry": [entry]}

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            batch = [item]
            while len(batch) < self.state.config.webhook_batch_max and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt.field != item.field:
                    self._queue.put_nowait(nxt)
                    break
                batch.append(nxt)
            try:
                await self._deliver(item.field, batch)
            except Exception:  # a worker must survive any one delivery
                log.exception("fake graph: webhook delivery crashed")
            finally:
                for done_item in batch:
                    if done_item.done is not None and not done_item.done.done():
                        done_item.done.set_result(None)
                self._pending -= len(batch)
                if self._pending <= 0:
                    self._pending = 0
                    self._idle.set()

    async def _deliver(self, field: str, batch: list[_Item]) -> None:
        cfg = self.state.config
        body = encode(self._envelope(field, [i.value for i in batch]))
        signature = sign(body, cfg.app_secret)
        delay = 0.2
        entry: dict[str, Any] = {
            "field": field,
            "statuses": [(i.value.get("id"), i.value.get("status") or i.value.get("event")) for i in batch],
            "attempts": 0,
            "http_status": None,
            "at": time.time(),
        }
        for attempt in range(cfg.webhook_retries + 1):
            entry["attempts"] = attempt + 1
            ok, status = await self._post_once(body, signature)
            entry["http_status"] = status
            if ok:
                self.state.counts["webhooks_posted"] += 1
                entry["delivered"] = True
                self.state.webhook_log.append(entry)
                return
            self.state.counts["webhook_failed_attempts"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.state.counts["webhooks_given_up"] += 1
        entry["delivered"] = False
        self.state.webhook_log.append(entry)
        log.warning("fake graph: gave up a %s webhook after %d attempts", field, cfg.webhook_retries + 1)

    async def _post_once(self, body: bytes, signature: str) -> tuple[bool, int | None]:
        if self.sink is not None:
            try:
                await self.sink(body, signature)
            except Exception as exc:  # the sink stands for the receiver: any failure means "retry"
                log.debug("fake graph: webhook sink failed: %s", type(exc).__name__)
                return False, None
            return True, 200
        url = self.state.config.webhook_url
        if not url or self._session is None:
            return False, None
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature}
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300, resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("fake graph: webhook POST failed: %s", type(exc).__name__)
            return False, None
