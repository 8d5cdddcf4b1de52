"""Owns reading one stored webhook body (Meta's JSON) into what it asks for: statuses, opt-outs and opt-ins,
template and other `field` events. Pure: no database, never raises (what it cannot use goes to `problems`).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.clock import utcnow
from shared.parsing.callback_data import as_int, parse_callback_data
from shared.services import suppression
from shared.services.delivery import DeliveryUpdate, Pricing
from shared.whatsapp.errors import classify_webhook_error


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


class Tally(dict[str, int]):
    """Counts by name, 0 for a name not counted yet: a Counter without Counter's construction cost (about half
    a microsecond, paid for every parsed body)."""

    __slots__ = ()

    def __missing__(self, key: str) -> int:
        return 0


@dataclass(slots=True)
class Parsed:
    """What one webhook body asks for."""

    statuses: list[StatusItem] = field(default_factory=list)
    opt_outs: list[OptOut] = field(default_factory=list)
    opt_ins: list[str] = field(default_factory=list)
    template_events: list[dict[str, Any]] = field(default_factory=list)
    quality_events: list[dict[str, Any]] = field(default_factory=list)
    category_events: list[dict[str, Any]] = field(default_factory=list)
    #: (field, value) of the other `changes` (no rule here): handed to the handler registered for the field.
    field_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    kinds: Tally = field(default_factory=Tally)
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


#: Recent timestamps as read (statuses of one batch share a few seconds); cleared when full.
_TIMESTAMPS: dict[str, datetime] = {}
_PRICINGS: dict[tuple[str | bool | None, ...], Pricing | None] = {}
_CACHE_MAX = 4096


def _timestamp(value: Any) -> datetime:
    if type(value) is str:
        found = _TIMESTAMPS.get(value)
        if found is not None:
            return found
    seconds = as_int(value)
    if seconds is None or not 0 < seconds < 10**11:
        return utcnow()
    at = datetime.fromtimestamp(seconds, UTC)
    if type(value) is str:
        if len(_TIMESTAMPS) >= _CACHE_MAX:
            _TIMESTAMPS.clear()
        _TIMESTAMPS[value] = at
    return at


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
                if isinstance(kind, str):
                    out.field_events.append((kind[:64], value))


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
    # The few pricing objects Meta sends repeat on every status: read each once (Pricing is immutable). Only
    # short strings, None and real booleans make a key (True == 1 must not share an entry with 1).
    key = (value.get("category"), value.get("type"), value.get("pricing_model"), value.get("billable"))
    if all(k is None or (type(k) is str and len(k) <= 64) for k in key[:3]) and type(key[3]) in (
        bool,
        type(None),
    ):
        if key in _PRICINGS:
            return _PRICINGS[key]
        result = _read_pricing(value)
        if len(_PRICINGS) >= _CACHE_MAX:
            _PRICINGS.clear()
        _PRICINGS[key] = result
        return result
    return _read_pricing(value)


def _read_pricing(value: dict[str, Any]) -> Pricing | None:
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
