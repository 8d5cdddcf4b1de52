"""Provides Meta's webhook endpoints: GET /webhook (verify-token handshake) and POST /webhook (signed events:
checked, stored durably, acknowledged; applied later by shared.services.webhooks.run_applier).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from shared import metrics
from shared.config import Settings
from shared.services.webhooks import STORE_TIMEOUT_S, EventWriter, check_signature, run_applier
from shared.whatsapp.factory import webhook_app_secret

log = logging.getLogger(__name__)

__all__ = ["STORE_TIMEOUT_S", "notification_text", "receive", "run_applier", "verify"]

# Counters of the refused POSTs, bound once.
_REJECTED_MISSING = metrics.WEBHOOK_REJECTED.labels("missing")
_REJECTED_INVALID = metrics.WEBHOOK_REJECTED.labels("invalid")
_MALFORMED = metrics.WEBHOOK_EVENTS.labels("malformed")
_OTHER = metrics.WEBHOOK_EVENTS.labels("other")
MAX_CHALLENGE = 256


def verify(request: web.Request, settings: Settings) -> web.Response:
    """Meta's handshake: echo hub.challenge when hub.mode is subscribe and the verify token matches."""
    query = request.query
    token = settings.WHATSAPP_VERIFY_TOKEN
    given = query.get("hub.verify_token", "")
    challenge = query.get("hub.challenge", "")
    ok = (
        token is not None
        and query.get("hub.mode") == "subscribe"
        and hmac.compare_digest(given.encode(), token.get_secret_value().encode())
        and 0 < len(challenge) <= MAX_CHALLENGE
    )
    if not ok:
        log.warning("webhook verification refused from %s", request.remote)
        return web.Response(status=403, text="forbidden")
    log.info("webhook verification accepted")
    return web.Response(text=challenge, content_type="text/plain")


async def receive(request: web.Request, settings: Settings, writer: EventWriter) -> web.Response:
    """Check size and signature, store the raw body, answer 200 (only once it is committed).

    The body is not parsed here: Meta signs exactly what it sends (always JSON), and the applier parses each
    stored body anyway and sets aside, with its error, one that is not JSON (purged after the retention like any
    other event). The handler only refuses, with a cheap check, a signed body that cannot be a notification.
    """
    limit = settings.BLAST_WEBHOOK_MAX_BODY
    if request.content_length is not None and request.content_length > limit:
        log.warning("webhook body of %s bytes refused (limit %s)", request.content_length, limit)
        return web.Response(status=413, text="body too large")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        log.warning("webhook body refused: larger than %s bytes", limit)
        return web.Response(status=413, text="body too large")
    # The sandbox signs its simulated webhooks with its own key when no app secret is configured.
    verdict = check_signature(webhook_app_secret(settings), body, request.headers.get("X-Hub-Signature-256"))
    if verdict != "ok":
        (_REJECTED_MISSING if verdict == "missing" else _REJECTED_INVALID).inc()
        log.warning("webhook POST from %s refused: signature %s", request.remote, verdict)
        return web.Response(status=401 if verdict == "missing" else 403, text=f"signature {verdict}")
    text = notification_text(body)
    if text is None:
        _MALFORMED.inc()
        log.warning("signed webhook POST of %s bytes is not a JSON object; refused", len(body))
        return web.Response(status=400, text="not JSON")
    if '"entry"' not in text:
        _OTHER.inc()
        log.info("signed webhook POST of an unknown shape ignored (%s bytes)", len(body))
        return web.Response(text="ignored")
    try:
        # Group commit: resolved once the INSERT that carries this body is committed (or failed, or too slow).
        await writer.submit(text)
    except Exception as exc:
        log.warning("webhook event not stored (%s); answered 503 so Meta retries", type(exc).__name__)
        return web.Response(status=503, text="not stored, retry later")
    return web.Response(text="ok")


def notification_text(body: bytes) -> str | None:
    """The body as text if it can be a JSON object (UTF-8, between braces), else None; not a full parse."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")) or "\x00" in text:
        return None
    return text
