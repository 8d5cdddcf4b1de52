"""Provides the fake Graph API's state: knobs, injected faults, templates, limiters and what it received."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: HTTP statuses the fake answers each code with (Meta's newer table; 130429's is a knob).
HTTP_STATUS: dict[int, int] = {
    0: 401,
    190: 401,
    3: 403,
    10: 403,
    4: 429,
    80007: 429,
    131048: 429,
    131056: 429,
    131049: 429,
    368: 403,
    131031: 403,
    130497: 403,
    131042: 402,
    131000: 500,
    1: 500,
    131016: 503,
    131057: 503,
    133004: 503,
    2: 503,
}

#: Short titles Meta puts in `error.message` after "(#code) ".
TITLES: dict[int, str] = {
    0: "AuthException",
    1: "API Unknown",
    2: "API Service",
    3: "API Method",
    4: "Application request limit reached",
    10: "Permission denied",
    100: "Invalid parameter",
    190: "Error validating access token: Session has expired",
    368: "Temporarily blocked for policies violations",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    130472: "User's number is part of an experiment",
    130497: "Business account is restricted from messaging users in this country",
    131000: "Something went wrong",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131026: "Message undeliverable",
    131031: "Business Account locked",
    131042: "Business eligibility payment issue",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages.",
    131051: "Unsupported message type",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132012: "Parameter format does not match format in the created template",
    132015: "Template is Paused",
    132016: "Template is Disabled",
    133004: "Server temporarily unavailable",
}

TEMPLATE_STATUSES = frozenset(
    {
        "APPROVED",
        "PENDING",
        "REJECTED",
        "PAUSED",
        "DISABLED",
        "IN_APPEAL",
        "PENDING_DELETION",
        "DELETED",
        "LIMIT_EXCEEDED",
        "ARCHIVED",
    }
)

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

FaultMode = Literal["error", "failed_webhook", "hang", "drop", "raw"]
FaultEndpoint = Literal["messages", "templates", "phone", "any"]


@dataclass
class FakeConfig:
    """Every knob of the fake; `POST /_fake/config` changes them at run time."""

    access_token: str = "fake-access-token"  # noqa: S105 (the fake's own test token)
    """The only bearer token accepted (code 190 otherwise)."""
    app_secret: str = "fake-app-secret"  # noqa: S105 (the fake's own test secret)
    """Key of the webhooks' X-Hub-Signature-256."""
    phone_number_id: str = "106540352242922"
    business_account_id: str = "102290129340398"
    display_phone_number: str = "15550783881"
    verified_name: str = "Blast Fake Business"
    quality_rating: str = "GREEN"
    messaging_limit: str = "TIER_2K"
    """`whatsapp_business_manager_messaging_limit` of the number."""
    throughput_level: str = "STANDARD"
    extra_numbers: dict[str, str] = field(default_factory=dict)
    """More sender numbers of the same WABA: phone number id -> throughput level (STANDARD: 80 msg/s, HIGH:
    1,000 msg/s; 130429 above it when `mps` is not None). Same token, same templates."""
    latency_ms: float = 0.0
    """Mean time added before every Graph API answer."""
    jitter_ms: float = 0.0
    """The latency is uniform in [latency_ms - jitter_ms, latency_ms + jitter_ms]."""
    mps: float | None = 80.0
    """Per sender number throughput (messages per second); above it sends get 130429. None: unlimited."""
    mps_burst: float | None = None
    """Sends allowed back to back before 130429 (default: one second's worth)."""
    throttle_http_status: int = 400
    """HTTP status of 130429 (Meta has used 400 and 429)."""
    pair_rate_per_s: float | None = 1 / 6
    """One business number -> one user: steady rate (1 per 6 s); None disables 131056."""
    pair_burst: int = 45
    """Messages to one user allowed in a burst before 131056."""
    unique_recipient_limit: int | None = None
    """Unique recipients per rolling 24 h; None: unlimited."""
    unique_limit_code: int = 131049
    """The code answered once that budget is spent."""
    failure_rate: float = 0.0
    """Share of accepted sends that later fail by webhook, with a code from failure_codes."""
    failure_codes: tuple[int, ...] = (131026, 131049)
    wamid_prefix: str = "wamid.HBgL"
    review_delay_s: float | None = None
    """Created templates leave PENDING after this long (None: only when told via /_fake)."""
    review_outcome: str = "APPROVED"
    """Where reviewed templates go: APPROVED or REJECTED (a name containing 'reject' is always rejected)."""
    default_page_size: int = 25
    max_page_size: int = 100
    """`limit` above this is cut (pages shorter than asked for, as Graph does)."""
    webhook_url: str | None = None
    """Where signed status webhooks are posted (None and no sink: none are sent)."""
    webhook_statuses: bool = True
    """Send sent/delivered/read/failed webhooks at all."""
    webhook_delay_ms: float = 20.0
    """Delay between the send and the first status, and between statuses."""
    webhook_jitter_ms: float = 10.0
    webhook_read_rate: float = 1.0
    """Share of delivered messages that are also read."""
    webhook_skip_delivered_rate: float = 0.0
    """Share of read messages whose delivered status never comes (Meta does this)."""
    webhook_duplicate_rate: float = 0.0
    """Share of status webhooks posted twice."""
    webhook_reorder_rate: float = 0.0
    """Share of messages whose statuses come newest first (read, delivered, sent)."""
    webhook_before_response: bool = False
    """Post the `sent` status before answering the send request."""
    webhook_batch_max: int = 1
    """Statuses due together may share one POST (entry/changes/statuses batching)."""
    webhook_retries: int = 5
    """Re-posts of a webhook answered non-2xx (backoff 0.2 s doubling)."""
    record_limit: int = 50_000
    """Received messages kept for /_fake/messages (oldest dropped first)."""
    webhook_subscribed: bool = True
    """`GET /{waba-id}/subscribed_apps` lists one app (False: none, as when nobody subscribed the WABA)."""
    app_id: str = "1234567890123456"
    app_name: str = "Blast Fake App"

    def update(self, changes: Mapping[str, Any]) -> list[str]:
        """Apply `{knob: value}`; returns the names changed.

        Raises:
            ValueError: an unknown knob or a value of the wrong type.
        """
        known = {f.name: f for f in dataclasses.fields(self)}
        done: list[str] = []
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}")
            current = getattr(self, name)
            if name == "failure_codes":
                value = tuple(int(v) for v in value)
            elif value is None or current is None:
                pass
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} takes true or false")
            elif isinstance(current, int | float) and not isinstance(value, int | float):
                raise ValueError(f"{name} takes a number")
            elif isinstance(current, float):
                value = float(value)
            setattr(self, name, value)
            done.append(name)
        return done

    def public(self) -> dict[str, Any]:
        """The knobs as JSON, secrets left out."""
        out = dataclasses.asdict(self)
        for name in ("access_token", "app_secret"):
            out[name] = "*" * 8
        out["failure_codes"] = list(self.failure_codes)
        return out


@dataclass
class FaultRule:
    """A failure to inject into matching requests.

    Modes: `error` answers a Graph error (`code`, `http_status`); `failed_webhook` accepts the send and
    reports `code` in a failed status webhook; `hang` accepts the send (it counts as sent, webhooks follow)
    and answers only after `delay_s`; `drop` accepts the send and closes the connection without an answer;
    `raw` answers `http_status` with `body` as is (e.g. a proxy's 502 page).
    """

    mode: FaultMode = "error"
    code: int = 131000
    http_status: int | None = None
    to: str | None = None
    """Only for this recipient (digits; a leading + is ignored)."""
    template: str | None = None
    """Only for this template name."""
    nth: int | None = None
    """Fire on every nth matching request only (counted per rule, from 1)."""
    times: int | None = None
    """Fire this many times, then never again (None: forever)."""
    probability: float = 1.0
    delay_s: float = 3600.0
    """For `hang`: how long the answer is held back."""
    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    endpoint: FaultEndpoint = "messages"
    details: str | None = None
    id: int = 0
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from a `/_fake/faults` body.

        Raises:
            ValueError: unknown fields or a bad mode.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"id", "seen", "fired"}
        extra = set(data) - names
        if extra:
            raise ValueError(f"unknown fault fields: {sorted(extra)}")
        rule = cls(**dict(data))
        if rule.mode not in ("error", "failed_webhook", "hang", "drop", "raw"):
            raise ValueError(f"unknown fault mode {rule.mode!r}")
        if rule.to is not None:
            rule.to = digits_of(rule.to)
        return rule

    def matches(self, endpoint: str, to: str | None, template: str | None, rng: random.Random) -> bool:
        """Count this request against the rule and say whether the rule fires for it."""
        if self.endpoint != "any" and self.endpoint != endpoint:
            return False
        if self.to is not None and self.to != to:
            return False
        if self.template is not None and self.template != template:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.seen += 1
        if self.nth is not None and self.seen % self.nth != 0:
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FakeTemplate:
    """One (name, language) template in the fake's store, in Meta's definition shape."""

    name: str
    language: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    components: list[dict[str, Any]] = field(default_factory=list)
    parameter_format: str = "POSITIONAL"
    id: str = ""
    quality_score: str = "UNKNOWN"
    rejected_reason: str = "NONE"
    review_at: float | None = None
    review_to: str | None = None

    def to_graph(self) -> dict[str, Any]:
        """The template as Meta's list endpoint returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "quality_score": {"score": self.quality_score, "date": int(time.time())},
            "rejected_reason": self.rejected_reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FakeTemplate:
        """A template from a seed file or `/_fake/templates` body (Meta's field names)."""
        quality = data.get("quality_score", "UNKNOWN")
        if isinstance(quality, Mapping):
            quality = quality.get("score", "UNKNOWN")
        status = str(data.get("status", "APPROVED")).upper()
        if status not in TEMPLATE_STATUSES:
            raise ValueError(f"unknown template status {status!r}")
        return cls(
            name=str(data["name"]),
            language=str(data["language"]),
            status=status,
            category=str(data.get("category", "UTILITY")).upper(),
            components=[dict(c) for c in data.get("components", [])],
            parameter_format=str(data.get("parameter_format", "POSITIONAL")).upper(),
            id=str(data.get("id", "")),
            quality_score=str(quality),
            rejected_reason=str(data.get("rejected_reason", "NONE")),
        )

    def expected(self) -> ExpectedParams:
        """What a send of this template must carry."""
        header_text: list[str] = []
        header_media: str | None = None
        body: list[str] = []
        url_buttons: list[int] = []
        for comp in self.components:
            kind = str(comp.get("type", "")).upper()
            if kind == "HEADER":
                fmt = str(comp.get("format", "TEXT")).upper()
                if fmt == "TEXT":
                    header_text = _distinct(PLACEHOLDER.findall(str(comp.get("text", ""))))
                elif fmt in ("IMAGE", "VIDEO", "DOCUMENT", "LOCATION"):
                    header_media = fmt.lower()
            elif kind == "BODY":
                body = _distinct(PLACEHOLDER.findall(str(comp.get("text", ""))))
            elif kind == "BUTTONS":
                for index, button in enumerate(comp.get("buttons", [])):
                    if str(button.get("type", "")).upper() == "URL" and PLACEHOLDER.search(
                        str(button.get("url", ""))
                    ):
                        url_buttons.append(index)
        return ExpectedParams(header_text, header_media, body, url_buttons)


@dataclass(frozen=True)
class ExpectedParams:
    header_text: list[str]
    header_media: str | None
    body: list[str]
    url_buttons: list[int]


def _distinct(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def digits_of(number: str) -> str:
    """A number without + and separators."""
    return "".join(ch for ch in number if ch.isdigit())


def wa_id_for(to: str) -> str:
    """The WhatsApp id Meta resolves a number to: Brazil drops the mobile 9, Mexico gains a 1."""
    digits = digits_of(to)
    if digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
        return digits[:4] + digits[5:]
    if digits.startswith("52") and len(digits) == 12:
        return "521" + digits[2:]
    return digits


class TemplateStore:
    """Templates by id, optionally kept in a JSON file that several processes share (the sandbox's)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._by_id: dict[str, FakeTemplate] = {}
        self._mtime: float | None = None
        self._next_id = 1_000_000_000_000_000 + secrets.randbelow(10**12)
        self.reload()

    def reload(self) -> None:
        """Re-read the file if another process changed it."""
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(self.path.read_text("utf-8"))
            loaded = {}
            for item in data.get("templates", []):
                tpl = FakeTemplate.from_json(item)
                tpl.review_at = item.get("review_at")
                tpl.review_to = item.get("review_to")
                loaded[tpl.id] = tpl
            self._by_id = loaded
            self._mtime = mtime

    def save(self) -> None:
        if self.path is None:
            return
        items = []
        for tpl in self._by_id.values():
            item = tpl.to_graph()
            item["quality_score"] = tpl.quality_score
            item["review_at"] = tpl.review_at
            item["review_to"] = tpl.review_to
            items.append(item)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"templates": items}, indent=1), "utf-8")
        tmp.replace(self.path)
        self._mtime = self.path.stat().st_mtime

    def new_id(self) -> str:
        self._next_id += 1 + secrets.randbelow(1000)
        return str(self._next_id)

    def all(self) -> list[FakeTemplate]:
        self.reload()
        return list(self._by_id.values())

    def get(self, template_id: str) -> FakeTemplate | None:
        self.reload()
        return self._by_id.get(template_id)

    def find(self, name: str, language: str) -> FakeTemplate | None:
        self.reload()
        for tpl in self._by_id.values():
            if tpl.name == name and tpl.language == language:
                return tpl
        return None

    def put(self, tpl: FakeTemplate) -> FakeTemplate:
        """Insert or replace (by name and language); gives the template an id if it has none."""
        self.reload()
        old = self.find(tpl.name, tpl.language)
        if old is not None:
            del self._by_id[old.id]
            tpl.id = tpl.id or old.id
        tpl.id = tpl.id or self.new_id()
        self._by_id[tpl.id] = tpl
        self.save()
        return tpl

    def delete(self, name: str, template_id: str | None = None) -> int:
        self.reload()
        doomed = [t.id for t in self._by_id.values() if t.name == name and template_id in (None, t.id)]
        for tid in doomed:
            del self._by_id[tid]
        self.save()
        return len(doomed)


class Gcra:
    """A generic cell rate limiter: `rate` per second, `burst` back to back."""

    __slots__ = ("burst", "interval", "tat")

    def __init__(self, rate: float, burst: float) -> None:
        self.interval = 1.0 / rate
        self.burst = max(1.0, burst)
        self.tat = 0.0

    def allow(self, now: float) -> bool:
        tat = max(self.tat, now)
        if tat - now > (self.burst - 1.0) * self.interval + 1e-9:
            return False
        self.tat = tat + self.interval
        return True


@dataclass
class ReceivedMessage:
    """One send request the fake received, whatever became of it."""

    seq: int
    received_at: float
    endpoint: str
    to: str | None
    template: str | None
    language: str | None
    outcome: str
    """accepted | error | hang | drop | raw"""
    code: int | None = None
    wamid: str | None = None
    wa_id: str | None = None
    callback_data: str | None = None
    category: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    phone_number_id: str | None = None
    """The sender number it was sent from (the URL's node)."""

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FakeState:
    """Everything the fake knows; one per server."""

    config: FakeConfig
    templates: TemplateStore
    rng: random.Random = field(default_factory=random.Random)
    faults: list[FaultRule] = field(default_factory=list)
    received: deque[ReceivedMessage] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)
    pairs: dict[str, Gcra] = field(default_factory=dict)
    number_limiter: Gcra | None = None
    extra_limiters: dict[str, tuple[str, Gcra]] = field(default_factory=dict)
    limiter_key: tuple[float | None, float | None] = (None, None)
    first_seen: dict[str, float] = field(default_factory=dict)
    webhook_log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))
    _seq: int = 0
    _fault_ids: int = 0

    def add_fault(self, rule: FaultRule) -> FaultRule:
        self._fault_ids += 1
        rule.id = self._fault_ids
        self.faults.append(rule)
        return rule

    def match_fault(self, endpoint: str, to: str | None, template: str | None) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(endpoint, to, template, self.rng):
                return rule
        return None

    def record(self, msg: ReceivedMessage) -> None:
        self.received.append(msg)
        while len(self.received) > self.config.record_limit:
            self.received.popleft()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def new_wamid(self) -> str:
        # Meta's ids are base64 of a protobuf; the URL-safe alphabet keeps them safe in paths and file names.
        return f"{self.config.wamid_prefix}{secrets.token_urlsafe(27)}"

    def throttle_ok(self, now: float, node: str | None = None) -> bool:
        """Whether the sender number may send one more message now (the 130429 check)."""
        cfg = self.config
        if cfg.mps is None or cfg.mps <= 0:
            return True
        if node is not None and node in cfg.extra_numbers:
            level = cfg.extra_numbers[node]
            held = self.extra_limiters.get(node)
            if held is None or held[0] != level:
                rate = 1000.0 if level.upper() == "HIGH" else 80.0
                held = self.extra_limiters[node] = (level, Gcra(rate, rate))
            return held[1].allow(now)
        key = (cfg.mps, cfg.mps_burst)
        if self.number_limiter is None or self.limiter_key != key:
            self.number_limiter = Gcra(cfg.mps, cfg.mps_burst if cfg.mps_burst is not None else cfg.mps)
            self.limiter_key = key
        return self.number_limiter.allow(now)

    def pair_ok(self, to: str, now: float) -> bool:
        """Whether this recipient may get one more message now (the 131056 check)."""
        cfg = self.config
        if cfg.pair_rate_per_s is None or cfg.pair_rate_per_s <= 0:
            return True
        limiter = self.pairs.get(to)
        if limiter is None:
            if len(self.pairs) > 100_000:
                # Forget pairs whose budget is whole again, so memory stays flat on long runs.
                self.pairs = {k: v for k, v in self.pairs.items() if v.tat > now}
            limiter = self.pairs[to] = Gcra(cfg.pair_rate_per_s, cfg.pair_burst)
        return limiter.allow(now)

    def unique_ok(self, to: str, now: float) -> bool:
        """Whether a new recipient fits the rolling 24 h unique-recipient budget."""
        limit = self.config.unique_recipient_limit
        if limit is None:
            return True
        day_ago = now - 86_400
        seen = self.first_seen.get(to)
        if seen is not None and seen > day_ago:
            return True
        live = sum(1 for t in self.first_seen.values() if t > day_ago)
        if live >= limit:
            return False
        self.first_seen[to] = now
        return True

    def summary(self) -> dict[str, Any]:
        """Counters for `/_fake/state`."""
        outcomes = Counter(m.outcome for m in self.received)
        return {
            "counts": dict(self.counts),
            "received": len(self.received),
            "outcomes": dict(outcomes),
            "templates": len(self.templates.all()),
            "faults": [f.public() for f in self.faults],
            "webhooks": {
                "posted": self.counts.get("webhooks_posted", 0),
                "failed_attempts": self.counts.get("webhook_failed_attempts", 0),
                "given_up": self.counts.get("webhooks_given_up", 0),
            },
        }
