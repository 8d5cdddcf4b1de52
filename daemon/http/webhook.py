"""Provides Meta's webhook endpoints: GET /webhook (verify-token handshake) and POST /webhook (signed events:
checked, stored durably, acknowledged; applied later by shared.services.webhooks.run_applier).
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web

from shared import metrics
from shared.config import Settings
from shared.services.webhooks import STORE_TIMEOUT_S, EventWriter, check_signature, run_applier
from shared.whatsapp.factory import webhook_app_secret

log = logging.getLogger(__name__)

__all__ = [
    "SIGNATURE",
    "STORE_TIMEOUT_S",
    "body_too_large",
    "judge",
    "not_stored",
    "notification_text",
    "receive",
    "refuse_length",
    "run_applier",
    "verify",
]

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
    """POST /webhook through aiohttp: the decisions are `refuse_length`, `judge` and `not_stored`, shared with
    the lean intake (daemon.http.intake)."""
    limit = settings.BLAST_WEBHOOK_MAX_BODY
    refused = refuse_length(request.content_length, limit)
    if refused is not None:
        return web.Response(status=refused[0], text=refused[1])
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        status, text = body_too_large(limit)
        return web.Response(status=status, text=text)
    status, text, stored = judge(settings, writer, body, request.headers.get(SIGNATURE), request.remote)
    if stored is not None:
        try:
            await stored
        except Exception as exc:
            status, text = not_stored(exc)
    return web.Response(status=status, text=text)


#: The header that carries Meta's signature of the body.
SIGNATURE = "X-Hub-Signature-256"
TOO_LARGE = (413, "body too large")


def refuse_length(length: int | None, limit: int) -> tuple[int, str] | None:
    """413 for a declared Content-Length above the limit (before reading the body), else None."""
    if length is not None and length > limit:
        log.warning("webhook body of %s bytes refused (limit %s)", length, limit)
        return TOO_LARGE
    return None


def body_too_large(limit: int) -> tuple[int, str]:
    """413 for a body (chunked, or longer than declared) that grew past the limit while read."""
    log.warning("webhook body refused: larger than %s bytes", limit)
    return TOO_LARGE


def judge(
    settings: Settings, writer: EventWriter, body: bytes, signature: str | None, remote: str | None
) -> tuple[int, str, asyncio.Future[None] | None]:
    """The answer to a POST /webhook body: (status, text, None) at once, or (200, "ok", stored) where `stored`
    is the group commit of its row: answer 200 once it is done, else `not_stored` (503).

    The body is not parsed here: Meta signs exactly what it sends (always JSON), and the applier parses each
    stored body anyway and sets aside, with its error, one that is not JSON (purged after the retention like any
    other event). Only a signed body that cannot be a notification is refused, with a cheap check.
    """
    # The sandbox signs its simulated webhooks with its own key when no app secret is configured.
    verdict = check_signature(webhook_app_secret(settings), body, signature)
    if verdict != "ok":
        (_REJECTED_MISSING if verdict == "missing" else _REJECTED_INVALID).inc()
        log.warning("webhook POST from %s refused: signature %s", remote, verdict)
        return (401 if verdict == "missing" else 403), f"signature {verdict}", None
    text = notification_text(body)
    if text is None:
        _MALFORMED.inc()
        log.warning("signed webhook POST of %s bytes is not a JSON object; refused", len(body))
        return 400, "not JSON", None
    if '"entry"' not in text:
        _OTHER.inc()
        log.info("signed webhook POST of an unknown shape ignored (%s bytes)", len(body))
        return 200, "ignored", None
    try:
        # Group commit: resolved once the INSERT that carries this body is committed (or failed, or too slow).
        stored = writer.submit(text)
    except Exception as exc:
        status, answer = not_stored(exc)
        return status, answer, None
    return 200, "ok", stored


def not_stored(exc: BaseException) -> tuple[int, str]:
    """503 for a body whose row was not committed (Meta retries it)."""
    log.warning("webhook event not stored (%s); answered 503 so Meta retries", type(exc).__name__)
    return 503, "not stored, retry later"


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
