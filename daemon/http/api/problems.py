"""Provides the API's errors as RFC 9457 problem details, with the CLI's one-line messages as `detail`.

Statuses as their RFCs mean them: 400 a body that is not JSON (or not a form), 401 no or a bad token, 403 a
viewer token asking for a change, 404 no such blast or path, 409 the blast's state forbids it (e.g. editing a
PROCESSING blast), 413 over BLAST_API_MAX_UPLOAD_MB, 422 well-formed but invalid, 429 too many failed logins,
503 Redis or the database cannot be reached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError
from tortoise.exceptions import DBConnectionError

from shared.errors import (
    BlastError,
    DatabaseError,
    InvalidTransition,
    NotFound,
    TooLarge,
    ValidationFailed,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
#: Where the API is served, on its own listener or beside the webhook.
API_PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiProblem(Exception):
    """Raised by the API's own code to answer with a problem (statuses that have no BlastError)."""

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=CONTENT_TYPE,
        headers=headers,
    )


def status_of(exc: BlastError) -> int:
    """The HTTP status of a service error."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidTransition):
        return 409
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, ValidationFailed):
        return 422
    if isinstance(exc, DatabaseError):
        return 503
    return 400


def validation_problem(exc: ValidationError, instance: str, *, where: str = "") -> web.Response:
    """422 naming each invalid field; `detail` names the first, in one line."""
    errors = [
        {"field": ".".join(str(p) for p in (where, *e["loc"]) if p != "") or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(422, f"{first['field']}: {first['message']}{more}", instance=instance, errors=errors)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error of the API, ours or aiohttp's, answered as problem+json."""
    path = request.path
    try:
        return await handler(request)
    except ApiProblem as exc:
        return problem(exc.status, exc.detail, instance=path, headers=exc.headers)
    except BlastError as exc:
        return problem(status_of(exc), exc.message, instance=path)
    except ValidationError as exc:
        return validation_problem(exc, path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {
            404: f"no such API path: {request.method} {path} (see {API_PREFIX}/openapi.json)",
            405: f"{request.method} is not allowed on {path}",
        }.get(exc.status, exc.text or HTTPStatus(exc.status).phrase)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem(exc.status, detail, instance=path, headers=headers)
    except (RedisError, OSError) as exc:
        log.warning("API %s %s: Redis unreachable (%s)", request.method, path, exc)
        return problem(503, "cannot reach Redis; try again shortly", instance=path)
    except DBConnectionError as exc:
        log.warning("API %s %s: database unreachable (%s)", request.method, path, exc)
        return problem(503, "cannot reach the database; try again shortly", instance=path)
    except Exception:
        log.exception("API %s %s failed", request.method, path)
        return problem(500, "internal error (the daemon's log has the details)", instance=path)
