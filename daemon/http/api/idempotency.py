"""Provides idempotent POSTs: the first successful answer to a POST with an Idempotency-Key is stored and a retry
with the key gets it again (header Idempotent-Replayed: true) instead of a second change.

Only successful answers are stored: a refused request changed nothing, so its retry runs again (and succeeds once
the cause is fixed). For POST /blasts the key is also the blast's own key (`blast create --key`), which the
database keeps unique, so two concurrent first tries still make one blast. Stored answers are kept for
RETENTION and deleted by the next POST that stores one.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web
from tortoise.exceptions import IntegrityError

from daemon.http.api.problems import ApiProblem
from shared.clock import utcnow
from shared.models import ApiIdempotency

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
MAX_KEY = 200


def header_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key (a structured-field string in quotes, or bare), or None.

    Raises:
        ApiProblem: 422 for an empty, too long or non-ASCII key.
    """
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY or not all("\x21" <= ch <= "\x7e" for ch in key):
        raise ApiProblem(422, f"{HEADER} must be 1-{MAX_KEY} printable ASCII characters without spaces")
    return key


def request_line(request: web.Request) -> str:
    return f"{request.method} {request.path}"


async def replay(key: str, request: web.Request) -> web.Response | None:
    """The stored answer for this key, or None when there is none.

    Raises:
        ApiProblem: 422 when the key was first used for another request.
    """
    row = await ApiIdempotency.get_or_none(key=key)
    if row is None:
        return None
    line = request_line(request)
    if row.request != line:
        raise ApiProblem(422, f"{HEADER} {key!r} was first used for {row.request}; use a new key for {line}")
    return web.Response(
        status=row.status,
        body=row.body.encode(),
        content_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


async def remember(key: str, request: web.Request, response: web.Response, *, token_name: str) -> None:
    """Store a successful answer for retries with this key (the first one stored wins)."""
    body = response.body
    text = body.decode() if isinstance(body, bytes) else ""
    now = utcnow()
    try:
        await ApiIdempotency.create(
            key=key,
            request=request_line(request),
            status=response.status,
            body=text,
            token_name=token_name,
            created_at=now,
        )
    except IntegrityError:
        log.info("idempotency key already stored by a concurrent request; the first answer is kept")
    await ApiIdempotency.filter(created_at__lt=now - RETENTION).delete()
