"""Provides the fake Graph API's aiohttp app: Meta's endpoints, shapes and errors, plus /_fake controls."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from shared.fake_graph.state import (
    HTTP_STATUS,
    TEMPLATE_STATUSES,
    TITLES,
    FakeState,
    FakeTemplate,
    FaultRule,
    ReceivedMessage,
    digits_of,
    wa_id_for,
)
from shared.fake_graph.webhooks import WebhookEmitter

STATE = web.AppKey("state", FakeState)
EMITTER = web.AppKey("emitter", WebhookEmitter)
CLOSING = web.AppKey("closing", asyncio.Event)

VERSION = r"{version:v\d+\.\d+}"
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
BUTTON_SUB_TYPES = frozenset({"quick_reply", "url", "catalog", "flow", "copy_code", "mpm", "voice_call"})
PARAM_TYPES = frozenset(
    {
        "text",
        "currency",
        "date_time",
        "image",
        "video",
        "document",
        "location",
        "payload",
        "action",
        "coupon_code",
    }
)
DEFAULT_TEMPLATE_FIELDS = ("id", "name", "language", "status", "category", "components", "parameter_format")
DEFAULT_PHONE_FIELDS = (
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "id",
)

Problem = tuple[int, str]


# --- Graph error envelope --------------------------------------------------------------------------------
def graph_error(
    code: int,
    details: str | None = None,
    *,
    http_status: int | None = None,
    subcode: int | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A response in Meta's error shape: `{"error": {message, type, code, error_data, fbtrace_id}}`."""
    text = title or TITLES.get(code, "Unknown error")
    error: dict[str, Any] = {
        "message": f"(#{code}) {text}" if code not in (190, 0) else text,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or text},
        "fbtrace_id": base64.b64encode(secrets.token_bytes(12)).decode(),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if code in (131000, 131016, 133004, 2):
        error["is_transient"] = True
    status = http_status or HTTP_STATUS.get(code, 400)
    return web.json_response({"error": error}, status=status, headers=headers)


def _no_such_node(node: str, method: str = "post") -> web.Response:
    details = (
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation."
    )
    return graph_error(100, details, subcode=33, title=details)


def _check_token(request: web.Request, state: FakeState) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else request.query.get("access_token", "")
    if not token:
        return graph_error(
            190, "An active access token must be used.", title="An active access token must be used."
        )
    if not secrets.compare_digest(token.encode(), state.config.access_token.encode()):
        return graph_error(
            190,
            "Invalid OAuth access token - Cannot parse access token",
            subcode=463,
            title="Error validating access token: Session has expired",
        )
    return None


async def _latency(request: web.Request) -> None:
    cfg = request.app[STATE].config
    if cfg.latency_ms <= 0 and cfg.jitter_ms <= 0:
        return
    low = max(0.0, cfg.latency_ms - cfg.jitter_ms)
    high = max(low, cfg.latency_ms + cfg.jitter_ms)
    await asyncio.sleep(request.app[STATE].rng.uniform(low, high) / 1000.0)


async def _hold(request: web.Request, seconds: float) -> None:
    """Hold the answer back (hang mode), but let the server stop promptly."""
    closing = request.app[CLOSING]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(closing.wait(), timeout=seconds)


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # The connection is gone; cancelling the handler keeps aiohttp from writing an answer to it.
    raise asyncio.CancelledError


async def _fault_response(request: web.Request, rule: FaultRule) -> web.StreamResponse:
    if rule.mode == "raw":
        await _latency(request)
        return web.Response(status=rule.http_status or 502, text=rule.body, content_type="text/html")
    if rule.mode == "hang":
        await _hold(request, rule.delay_s)
        return graph_error(rule.code, rule.details, http_status=rule.http_status)
    if rule.mode == "drop":
        return _drop(request)
    await _latency(request)
    headers = _rate_headers(rule.code, request.app[STATE].config.business_account_id)
    return graph_error(rule.code, rule.details, http_status=rule.http_status, headers=headers)


def _rate_headers(code: int, waba_id: str) -> dict[str, str] | None:
    """Meta's usage header on call-limit errors: access comes back in `estimated_time_to_regain_access` min."""
    if code not in (4, 80007):
        return None
    usage = {"type": "whatsapp", "call_count": 100, "total_cputime": 1, "total_time": 1}
    usage["estimated_time_to_regain_access"] = 1
    return {"x-business-use-case-usage": json.dumps({waba_id: [usage]})}


# --- sending ---------------------------------------------------------------------------------------------
def _check_text_params(where: str, expected: list[str], params: list[Any], named: bool) -> Problem | None:
    if named:
        names: list[str] = []
        for param in params:
            if not isinstance(param, dict):
                return 100, f"{where}: every parameter must be an object"
            if param.get("type", "text") == "text" and not param.get("parameter_name"):
                return 100, f"{where}: parameter_name is required for every parameter of a NAMED template"
            names.append(str(param.get("parameter_name")))
        if sorted(names) != sorted(expected):
            return 132000, f"{where}: expected parameters {expected}, got {names}"
    elif len(params) != len(expected):
        return 132000, f"{where}: expected {len(expected)} parameters, got {len(params)}"
    for param in params:
        problem = _check_value(where, param)
        if problem is not None:
            return problem
    return None


def _check_value(where: str, param: Any) -> Problem | None:
    if not isinstance(param, dict):
        return 100, f"{where}: every parameter must be an object"
    kind = param.get("type")
    if kind not in PARAM_TYPES:
        return 100, f"{where}: unknown parameter type {kind!r}"
    value = param.get(kind)
    if kind == "text":
        if not isinstance(value, str) or not value:
            return 131008, f"{where}: parameter text is missing or empty"
        if where == "body" and ("\n" in value or "\t" in value or "     " in value):
            return (
                131009,
                f"{where}: param text cannot have new-line/tab characters or more than 4 consecutive spaces",
            )
    elif kind == "currency":
        if not isinstance(value, dict) or not {"fallback_value", "code", "amount_1000"} <= set(value):
            return 131008, f"{where}: currency needs fallback_value, code and amount_1000"
    elif kind == "date_time":
        if not isinstance(value, dict) or "fallback_value" not in value:
            return 131008, f"{where}: date_time needs fallback_value"
    elif kind in ("image", "video", "document") and (
        not isinstance(value, dict) or not ({"link", "id"} & set(value))
    ):
        return 131008, f"{where}: {kind} needs a link or an id"
    return None


def _check_components(tpl: FakeTemplate, components: Any) -> Problem | None:
    if not isinstance(components, list):
        return 100, "template.components must be a list"
    header: list[Any] | None = None
    body: list[Any] | None = None
    buttons: dict[int, tuple[str, list[Any]]] = {}
    for comp in components:
        if not isinstance(comp, dict):
            return 100, "every component must be an object"
        kind = str(comp.get("type", "")).lower()
        params = comp.get("parameters", [])
        if not isinstance(params, list):
            return 100, f"{kind}: parameters must be a list"
        if kind == "header":
            header = params
        elif kind == "body":
            body = params
        elif kind == "button":
            sub_type = str(comp.get("sub_type", "")).lower()
            index = comp.get("index")
            if sub_type not in BUTTON_SUB_TYPES:
                return 100, f"button: unknown sub_type {comp.get('sub_type')!r}"
            try:
                position = int(str(index))
            except ValueError:
                return 131008, "button: index is required (the button's position, as a string)"
            buttons[position] = (sub_type, params)
        else:
            return 100, f"unknown component type {comp.get('type')!r} (header, body or button)"
    expected = tpl.expected()
    named = tpl.parameter_format == "NAMED"
    if expected.header_media is not None:
        if not header or len(header) != 1:
            return 132000, f"header: expected 1 {expected.header_media} parameter, got {len(header or [])}"
        if not isinstance(header[0], dict) or header[0].get("type") != expected.header_media:
            return 132012, f"header: expected a {expected.header_media} parameter"
        problem = _check_value("header", header[0])
    else:
        problem = _check_text_params("header", expected.header_text, header or [], named)
    if problem is None:
        problem = _check_text_params("body", expected.body, body or [], named)
    if problem is not None:
        return problem
    for position in expected.url_buttons:
        got = buttons.get(position)
        if got is None or got[0] != "url" or len(got[1]) != 1:
            return 132000, f"button {position}: the URL button needs one parameter"
    return None


def _validate_send(state: FakeState, body: dict[str, Any]) -> tuple[Problem | None, FakeTemplate | None]:
    if body.get("messaging_product") != "whatsapp":
        return (100, "The parameter messaging_product is required and must be 'whatsapp'"), None
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        return (100, "recipient_type must be individual or group"), None
    to = body.get("to")
    if not isinstance(to, str) or not to:
        return (100, "The parameter to is required."), None
    digits = digits_of(to)
    if not re.fullmatch(r"\+?[0-9 ()\-.]+", to) or not 8 <= len(digits) <= 15 or digits[0] == "0":
        return (131009, f"to: {to!r} is not a valid WhatsApp phone number"), None
    kind = body.get("type", "text")
    if kind == "text":
        return (131047, "More than 24 hours have passed since the recipient last replied"), None
    if kind != "template":
        return (131051, f"message type {kind!r} is not supported here"), None
    template = body.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        return (131008, "template.name is required"), None
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        return (131008, "template.language.code is required"), None
    callback = body.get("biz_opaque_callback_data")
    if callback is not None and (not isinstance(callback, str) or len(callback) > 512):
        return (100, "biz_opaque_callback_data must be a string of at most 512 characters"), None
    tpl = state.templates.find(template["name"], language["code"])
    if tpl is None:
        details = f"template name ({template['name']}) does not exist in {language['code']}"
        return (132001, details), None
    if tpl.status == "PAUSED":
        return (132015, f"template {tpl.name} is paused"), tpl
    if tpl.status == "DISABLED":
        return (132016, f"template {tpl.name} is disabled"), tpl
    if tpl.status != "APPROVED":
        return (132001, f"template {tpl.name} ({tpl.language}) is {tpl.status}, not APPROVED"), tpl
    return _check_components(tpl, template.get("components", [])), tpl


async def send_message(request: web.Request) -> web.StreamResponse:
    """`POST /{version}/{phone-number-id}/messages` (and `/marketing_messages`)."""
    state = request.app[STATE]
    cfg = state.config
    endpoint = request.path.rsplit("/", 1)[-1]
    state.counts[f"{endpoint}_requests"] += 1
    received_at = time.time()  # on arrival, before the body is read (Meta counts arrivals)
    raw = await request.read()
    denied = _check_token(request, state)
    if denied is not None:
        await _latency(request)
        return denied
    node = request.match_info["node"]
    if node != cfg.phone_number_id and node not in cfg.extra_numbers:
        await _latency(request)
        return _no_such_node(node)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        await _latency(request)
        return graph_error(100, "The request body must be a JSON object")
    template = body.get("template")
    name = template.get("name") if isinstance(template, dict) else None
    language = template.get("language") if isinstance(template, dict) else None
    to_raw = body.get("to")
    to = digits_of(to_raw) if isinstance(to_raw, str) else None
    callback = body.get("biz_opaque_callback_data")
    msg = ReceivedMessage(
        seq=state.next_seq(),
        received_at=received_at,
        endpoint=endpoint,
        to=to,
        template=name if isinstance(name, str) else None,
        language=language.get("code") if isinstance(language, dict) else None,
        outcome="accepted",
        callback_data=callback if isinstance(callback, str) else None,
        body=body,
        phone_number_id=node,
    )
    fault = state.match_fault("messages", to, msg.template)
    if fault is not None and fault.mode in ("error", "raw"):
        msg.outcome, msg.code = fault.mode, fault.code
        state.record(msg)
        return await _fault_response(request, fault)
    now = asyncio.get_running_loop().time()
    problem: Problem | None = None
    if not state.throttle_ok(now, node if node != cfg.phone_number_id else None):
        problem = (
            130429,
            "Message failed to send because there were too many messages sent from this phone number",
        )
        http_status: int | None = cfg.throttle_http_status
    else:
        http_status = None
        problem, tpl = _validate_send(state, body)
        msg.category = tpl.category if tpl is not None else None
        if problem is None and to is not None and not state.pair_ok(to, now):
            problem = (131056, "Too many messages sent from this phone number to the same phone number")
        if problem is None and to is not None and not state.unique_ok(to, time.time()):
            problem = (cfg.unique_limit_code, "The business reached its 24 h messaging limit")
    if problem is not None:
        msg.outcome, msg.code = "error", problem[0]
        state.counts[f"error_{problem[0]}"] += 1
        state.record(msg)
        await _latency(request)
        return graph_error(problem[0], problem[1], http_status=http_status)
    msg.wamid = state.new_wamid()
    msg.wa_id = wa_id_for(to or "")
    fail_code: int | None = None
    if fault is not None and fault.mode == "failed_webhook":
        fail_code = fault.code
    elif cfg.failure_rate > 0 and cfg.failure_codes and state.rng.random() < cfg.failure_rate:
        fail_code = state.rng.choice(cfg.failure_codes)
    msg.code = fail_code
    if fault is not None and fault.mode in ("hang", "drop"):
        msg.outcome = fault.mode
    state.counts["accepted"] += 1
    state.record(msg)
    first_status = request.app[EMITTER].message_statuses(msg, fail_code)
    if fault is not None and fault.mode == "drop":
        return _drop(request)
    if fault is not None and fault.mode == "hang":
        await _hold(request, fault.delay_s)
    await _latency(request)
    if first_status is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first_status), timeout=5.0)
    return web.json_response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to_raw, "wa_id": msg.wa_id}],
            "messages": [{"id": msg.wamid, "message_status": "accepted"}],
        }
    )


# --- phone number and single objects ----------------------------------------------------------------------
def _select(obj: dict[str, Any], request: web.Request, default: tuple[str, ...]) -> dict[str, Any]:
    fields = request.query.get("fields")
    wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else list(default)
    return {k: obj[k] for k in ["id", *wanted] if k in obj}


def phone_number(state: FakeState, node: str | None = None) -> dict[str, Any]:
    cfg = state.config
    extra = node is not None and node in cfg.extra_numbers
    return {
        "id": node if extra else cfg.phone_number_id,
        # another number of the fake: the primary's display number with its id's last 4 digits
        "display_phone_number": cfg.display_phone_number[:-4] + node[-4:]
        if node and extra
        else cfg.display_phone_number,
        "verified_name": cfg.verified_name,
        "quality_rating": cfg.quality_rating,
        # the messaging limit belongs to the business portfolio: the same for every number
        "whatsapp_business_manager_messaging_limit": cfg.messaging_limit,
        "messaging_limit_tier": cfg.messaging_limit,
        "throughput": {"level": cfg.extra_numbers[node] if node and extra else cfg.throughput_level},
        "code_verification_status": "VERIFIED",
        "name_status": "APPROVED",
        "platform_type": "CLOUD_API",
        "status": "CONNECTED",
    }


async def get_node(request: web.Request) -> web.StreamResponse:
    """`GET /{version}/{id}`: the phone number, or one template by id."""
    state = request.app[STATE]
    denied = _check_token(request, state)
    if denied is not None:
        await _latency(request)
        return denied
    node = request.match_info["node"]
    if node == state.config.phone_number_id or node in state.config.extra_numbers:
        state.counts["phone_requests"] += 1
        fault = state.match_fault("phone", None, None)
        if fault is not None:
            return await _fault_response(request, fault)
        await _latency(request)
        return web.json_response(_select(phone_number(state, node), request, DEFAULT_PHONE_FIELDS))
    apply_due_reviews(request.app)
    tpl = state.templates.get(node)
    await _latency(request)
    if tpl is None:
        return _no_such_node(node, "get")
    return web.json_response(_select(tpl.to_graph(), request, DEFAULT_TEMPLATE_FIELDS))


async def waba_phone_numbers(request: web.Request) -> web.StreamResponse:
    """`GET /{version}/{waba-id}/phone_numbers`: the business account's numbers (the fake has one)."""
    state = request.app[STATE]
    denied = _check_token(request, state)
    if denied is not None:
        return denied
    if request.match_info["node"] != state.config.business_account_id:
        return _no_such_node(request.match_info["node"], "get")
    await _latency(request)
    return web.json_response({"data": [_select(phone_number(state), request, DEFAULT_PHONE_FIELDS)]})


async def subscribed_apps(request: web.Request) -> web.StreamResponse:
    """`GET /{version}/{waba-id}/subscribed_apps`: the apps that get this account's webhooks."""
    state = request.app[STATE]
    denied = _check_token(request, state)
    if denied is not None:
        return denied
    cfg = state.config
    if request.match_info["node"] != cfg.business_account_id:
        return _no_such_node(request.match_info["node"], "get")
    await _latency(request)
    app = {
        "whatsapp_business_api_data": {
            "id": cfg.app_id,
            "link": "https://example.invalid/",
            "name": cfg.app_name,
        }
    }
    return web.json_response({"data": [app] if cfg.webhook_subscribed else []})


# --- templates ---------------------------------------------------------------------------------------------
def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{index}".encode()).decode().rstrip("=")


def _uncursor(value: str) -> int:
    padded = value + "=" * (-len(value) % 4)
    text = base64.urlsafe_b64decode(padded.encode()).decode()
    if not text.startswith("cursor:"):
        raise ValueError(value)
    return int(text.removeprefix("cursor:"))


def apply_due_reviews(app: web.Application, *, force: bool = False) -> list[FakeTemplate]:
    """Move PENDING templates whose review time has come (all of them with `force`) to their outcome."""
    state = app[STATE]
    now = time.time()
    moved: list[FakeTemplate] = []
    for tpl in state.templates.all():
        if tpl.review_to is None or tpl.status != "PENDING":
            continue
        if not force and (tpl.review_at is None or tpl.review_at > now):
            continue
        moved.append(tpl)
    for tpl in moved:
        set_template_status(app, tpl, str(tpl.review_to))
    return moved


def set_template_status(
    app: web.Application, tpl: FakeTemplate, status: str, reason: str | None = None
) -> None:
    """Change a template's status, save it, and send the `message_template_status_update` webhook."""
    state = app[STATE]
    tpl.status = status
    tpl.review_at = None
    tpl.review_to = None
    if status == "REJECTED":
        tpl.rejected_reason = reason or "INVALID_FORMAT"
    elif status == "APPROVED":
        tpl.rejected_reason = "NONE"
        if tpl.quality_score == "UNKNOWN":
            tpl.quality_score = "GREEN"
    state.templates.put(tpl)
    app[EMITTER].template_event(tpl, status, reason if status != "APPROVED" else None)


async def list_templates(request: web.Request) -> web.StreamResponse:
    """`GET /{version}/{waba-id}/message_templates` with cursor paging and filters."""
    state = request.app[STATE]
    cfg = state.config
    state.counts["list_requests"] += 1
    denied = _check_token(request, state)
    if denied is not None:
        await _latency(request)
        return denied
    if request.match_info["node"] != cfg.business_account_id:
        await _latency(request)
        return _no_such_node(request.match_info["node"], "get")
    fault = state.match_fault("templates", None, None)
    if fault is not None:
        return await _fault_response(request, fault)
    apply_due_reviews(request.app)
    items = state.templates.all()
    query = request.query
    if "name" in query:
        items = [t for t in items if query["name"].lower() in t.name.lower()]
    for key in ("status", "category", "language"):
        if key in query:
            allowed = {v.strip().upper() if key != "language" else v.strip() for v in query[key].split(",")}
            items = [t for t in items if getattr(t, key) in allowed]
    try:
        limit = max(1, min(int(query.get("limit", cfg.default_page_size)), cfg.max_page_size))
        start = _uncursor(query["after"]) + 1 if "after" in query else 0
        if "before" in query:
            end = _uncursor(query["before"])
            start = max(0, end - limit)
            limit = end - start
    except ValueError:
        await _latency(request)
        return graph_error(100, "Invalid cursor or limit")
    page = items[start : start + limit]
    data = [_select(t.to_graph(), request, DEFAULT_TEMPLATE_FIELDS) for t in page]
    paging: dict[str, Any] = {}
    if page:
        after, before = _cursor(start + len(page) - 1), _cursor(start)
        paging["cursors"] = {"before": before, "after": after}
        # Graph's paging links carry the access token: never log them.
        base = {k: v for k, v in query.items() if k not in ("after", "before")}
        base["access_token"] = cfg.access_token
        base["limit"] = str(limit)
        if start + len(page) < len(items):
            paging["next"] = str(request.url.with_query({**base, "after": after}))
        if start > 0:
            paging["previous"] = str(request.url.with_query({**base, "before": before}))
    await _latency(request)
    return web.json_response({"data": data, "paging": paging})


async def create_template(request: web.Request) -> web.StreamResponse:
    """`POST /{version}/{waba-id}/message_templates`: a new template, PENDING review."""
    state = request.app[STATE]
    cfg = state.config
    denied = _check_token(request, state)
    if denied is not None:
        return denied
    if request.match_info["node"] != cfg.business_account_id:
        return _no_such_node(request.match_info["node"])
    fault = state.match_fault("templates", None, None)
    if fault is not None:
        return await _fault_response(request, fault)
    try:
        body = json.loads(await request.read())
    except ValueError:
        body = None
    await _latency(request)
    if not isinstance(body, dict):
        return graph_error(100, "The request body must be a JSON object")
    name, language, category = body.get("name"), body.get("language"), str(body.get("category", "")).upper()
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
        return graph_error(
            100, "name: lowercase letters, digits and underscores only, at most 512 characters"
        )
    if not isinstance(language, str) or not language:
        return graph_error(100, "The parameter language is required")
    if category not in ("MARKETING", "UTILITY", "AUTHENTICATION"):
        return graph_error(100, "category must be MARKETING, UTILITY or AUTHENTICATION")
    components = body.get("components")
    if not isinstance(components, list) or not any(
        isinstance(c, dict) and str(c.get("type", "")).upper() == "BODY" for c in components
    ):
        return graph_error(100, "components must be a list with a BODY component")
    if state.templates.find(name, language) is not None:
        return graph_error(100, "Content in this language already exists", subcode=2388024)
    tpl = FakeTemplate(
        name=name,
        language=language,
        status="PENDING",
        category=category,
        components=[dict(c) for c in components],
        parameter_format=str(body.get("parameter_format", "POSITIONAL")).upper(),
    )
    if cfg.review_delay_s is not None:
        tpl.review_at = time.time() + cfg.review_delay_s
        tpl.review_to = "REJECTED" if "reject" in name else cfg.review_outcome
        request.app[EMITTER].later(cfg.review_delay_s + 0.01, lambda: apply_due_reviews(request.app))
    elif "reject" in name:
        tpl.review_to = "REJECTED"
    else:
        tpl.review_to = cfg.review_outcome
    state.templates.put(tpl)
    state.counts["templates_created"] += 1
    return web.json_response({"id": tpl.id, "status": tpl.status, "category": tpl.category})


async def delete_template(request: web.Request) -> web.StreamResponse:
    """`DELETE /{version}/{waba-id}/message_templates?name=…[&hsm_id=…]`."""
    state = request.app[STATE]
    denied = _check_token(request, state)
    if denied is not None:
        return denied
    if request.match_info["node"] != state.config.business_account_id:
        return _no_such_node(request.match_info["node"], "delete")
    name = request.query.get("name")
    await _latency(request)
    if not name:
        return graph_error(100, "The parameter name is required")
    if state.templates.delete(name, request.query.get("hsm_id")) == 0:
        return graph_error(100, f"Message template {name!r} not found")
    return web.json_response({"success": True})


# --- /_fake control endpoints ------------------------------------------------------------------------------
def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw.strip() else {}


async def fake_health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def fake_state(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({**state.summary(), "config": state.config.public()})


async def fake_messages(request: web.Request) -> web.Response:
    """`GET /_fake/messages[?to=…&outcome=…&after_seq=…]`: what the fake received."""
    state = request.app[STATE]
    query = request.query
    to = digits_of(query["to"]) if "to" in query else None
    after = int(query.get("after_seq", "0"))
    out = [
        m.public()
        for m in state.received
        if m.seq > after and (to is None or m.to == to) and query.get("outcome", m.outcome) == m.outcome
    ]
    return web.json_response({"data": out, "count": len(out)})


async def fake_reset(request: web.Request) -> web.Response:
    """`POST /_fake/reset {"templates": false}`: forget what was received, counters, faults and limiters."""
    body = await _json_body(request)
    state = request.app[STATE]
    state.received.clear()
    state.counts.clear()
    state.faults.clear()
    state.pairs.clear()
    state.first_seen.clear()
    state.number_limiter = None
    state.webhook_log.clear()
    if isinstance(body, dict) and body.get("templates"):
        for tpl in state.templates.all():
            state.templates.delete(tpl.name)
    return web.json_response({"ok": True})


async def fake_config(request: web.Request) -> web.Response:
    """`GET /_fake/config`, or `POST` `{knob: value, …}` to change knobs."""
    state = request.app[STATE]
    changed: list[str] = []
    if request.method == "POST":
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _bad("a JSON object of knobs is expected")
        try:
            changed = state.config.update(body)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
    return web.json_response({"changed": changed, "config": state.config.public()})


async def fake_faults(request: web.Request) -> web.Response:
    """`GET` the rules, `POST` one rule (or a list), `DELETE` all of them."""
    state = request.app[STATE]
    if request.method == "POST":
        body = await _json_body(request)
        try:
            for item in body if isinstance(body, list) else [body]:
                state.add_fault(FaultRule.from_json(item))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
    elif request.method == "DELETE":
        state.faults.clear()
    return web.json_response({"data": [f.public() for f in state.faults]})


async def fake_fault_delete(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fault_id = int(request.match_info["fault_id"])
    state.faults[:] = [f for f in state.faults if f.id != fault_id]
    return web.json_response({"data": [f.public() for f in state.faults]})


async def fake_templates(request: web.Request) -> web.Response:
    """`GET` the store; `POST` one template or `{"templates": [...]}` to seed or replace them."""
    state = request.app[STATE]
    if request.method == "POST":
        body = await _json_body(request)
        items = body.get("templates", [body]) if isinstance(body, dict) else body
        try:
            for item in items:
                state.templates.put(FakeTemplate.from_json(item))
        except (ValueError, TypeError, KeyError) as exc:
            return _bad(f"bad template: {exc}")
    return web.json_response({"data": [t.to_graph() for t in state.templates.all()]})


async def fake_template_status(request: web.Request) -> web.Response:
    """`POST /_fake/templates/status {"name", "language" | "id", "status", "reason"}`, webhook included."""
    body = await _json_body(request)
    state = request.app[STATE]
    if not isinstance(body, dict) or str(body.get("status", "")).upper() not in TEMPLATE_STATUSES:
        return _bad(f"status must be one of {sorted(TEMPLATE_STATUSES)}")
    if "id" in body:
        matches = [t for t in state.templates.all() if t.id == str(body["id"])]
    else:
        matches = [
            t
            for t in state.templates.all()
            if t.name == body.get("name") and body.get("language") in (None, t.language)
        ]
    if not matches:
        return _bad("no such template")
    for tpl in matches:
        set_template_status(request.app, tpl, str(body["status"]).upper(), body.get("reason"))
    return web.json_response({"data": [t.to_graph() for t in matches]})


async def fake_template_review(request: web.Request) -> web.Response:
    """`POST /_fake/templates/review`: finish every pending review now."""
    moved = apply_due_reviews(request.app, force=True)
    return web.json_response({"data": [t.to_graph() for t in moved]})


async def fake_webhooks(request: web.Request) -> web.Response:
    """`GET /_fake/webhooks`: the webhooks posted (id and status of each, attempts, answer)."""
    state = request.app[STATE]
    return web.json_response({"data": list(state.webhook_log), "count": len(state.webhook_log)})


async def verify_handshake(request: web.Request) -> web.Response:
    """`GET /_fake/verify?url=…&verify_token=…`: play Meta's webhook verification against a receiver."""
    state = request.app[STATE]
    url = request.query.get("url") or state.config.webhook_url
    if not url:
        return _bad("no url")
    challenge = str(secrets.randbelow(10**9))
    params = {
        "hub.mode": "subscribe",
        "hub.challenge": challenge,
        "hub.verify_token": request.query.get("verify_token", ""),
    }
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        text = await resp.text()
    return web.json_response({"status": resp.status, "ok": resp.status == 200 and text == challenge})


def create_app(state: FakeState, emitter: WebhookEmitter) -> web.Application:
    """The fake Graph API as an aiohttp application.

    Args:
        state: knobs, templates, faults and records.
        emitter: posts the webhooks (started and closed by the caller).

    Returns:
        The application; Meta's routes accept any `v<major>.<minor>` version segment.
    """
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state
    app[EMITTER] = emitter
    app[CLOSING] = asyncio.Event()
    r = app.router
    r.add_get("/_fake/health", fake_health)
    r.add_get("/_fake/state", fake_state)
    r.add_get("/_fake/messages", fake_messages)
    r.add_post("/_fake/reset", fake_reset)
    r.add_route("*", "/_fake/config", fake_config)
    r.add_route("*", "/_fake/faults", fake_faults)
    r.add_delete("/_fake/faults/{fault_id:\\d+}", fake_fault_delete)
    r.add_route("*", "/_fake/templates", fake_templates)
    r.add_post("/_fake/templates/status", fake_template_status)
    r.add_post("/_fake/templates/review", fake_template_review)
    r.add_get("/_fake/webhooks", fake_webhooks)
    r.add_get("/_fake/verify", verify_handshake)
    r.add_post(f"/{VERSION}/{{node}}/messages", send_message)
    r.add_post(f"/{VERSION}/{{node}}/marketing_messages", send_message)
    r.add_get(f"/{VERSION}/{{node}}/message_templates", list_templates)
    r.add_post(f"/{VERSION}/{{node}}/message_templates", create_template)
    r.add_delete(f"/{VERSION}/{{node}}/message_templates", delete_template)
    r.add_get(f"/{VERSION}/{{node}}/phone_numbers", waba_phone_numbers)
    r.add_get(f"/{VERSION}/{{node}}/subscribed_apps", subscribed_apps)
    r.add_get(f"/{VERSION}/{{node}}", get_node)
    return app
