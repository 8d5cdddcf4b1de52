"""Provides the API's handlers and THE table of its operations (routing and the OpenAPI document both read it).

Each handler parses its request with the models, calls the same service as the CLI (the token's name as the
actor of the audit log), and answers with a model: no rule of the services is repeated here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_origin

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ValidationError

from daemon.http.api import idempotency
from daemon.http.api.auth import SETTINGS, request_token
from daemon.http.api.models import (
    ActionOut,
    BlastCostOut,
    BlastDetailOut,
    BlastFields,
    BlastListQuery,
    BlastPage,
    BlastSummaryOut,
    CostOut,
    Counts,
    CreateBlastJson,
    DaemonOut,
    EmptyBody,
    ImportReport,
    QueueOut,
    RateOut,
    RecipientIn,
    RecipientListQuery,
    RecipientOut,
    RecipientPageOut,
    RejectedRowOut,
    RescheduleIn,
    RescheduleOut,
    RetryIn,
    RetryOut,
    SearchHitOut,
    SearchQuery,
    SearchResult,
    StreamOut,
    TemplateList,
    TemplateListQuery,
    TemplateOut,
    ZoneOut,
)
from daemon.http.api.problems import API_PREFIX, ApiProblem
from shared.config import Settings
from shared.errors import NotFound, TooLarge, ValidationFailed
from shared.services import (
    blast_actions,
    blast_import,
    blast_reads,
    blasts,
    cost_estimate,
    recipients,
    templates,
)
from shared.services import senders as sender_service
from shared.services.queue_stats import queue_stats
from shared.status import BlastStatus

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Bytes read per network chunk of a body.
READ_CHUNK = 1 << 16
#: A form's text field (name, template …) is at most this long; only the recipients file may be large.
MAX_FORM_FIELD = 64 * 1024
MAX_FORM_PARTS = 200
#: JSON recipients are written to the importer in pieces of this many rows.
JSON_CSV_ROWS = 2000
FORM_FIELDS = frozenset(BlastFields.model_fields) - {"constants"}
#: Blast ids are 32-bit integers, recipient ids 64-bit: a larger one names nothing (and must not reach PostgreSQL).
MAX_BLAST_ID = 2**31 - 1
MAX_RECIPIENT_ID = 2**63 - 1


# --- the operations table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One API operation: its route, its models (which validate and document it) and its answers."""

    method: str
    #: Path inside /api/v1, in aiohttp's syntax (a `{name:regex}` is documented as `{name}`).
    path: str
    handler: Handler
    operation_id: str
    summary: str
    response: type[BaseModel]
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    #: A multipart/form-data body: these fields plus a `recipients` CSV file.
    form: type[BaseModel] | None = None
    body_required: bool = True
    errors: Sequence[int] = field(default_factory=tuple)
    description: str = ""

    @property
    def changes(self) -> bool:
        return self.method != "GET"


# --- request helpers --------------------------------------------------------------------------------------------


def _settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def _max_bytes(request: web.Request) -> int:
    return _settings(request).BLAST_API_MAX_UPLOAD_MB * (1 << 20)


def _check_length(request: web.Request) -> None:
    limit = _max_bytes(request)
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(
            f"the request body is larger than {limit >> 20} MiB (BLAST_API_MAX_UPLOAD_MB); "
            "split the recipients into several blasts"
        )


async def _read_body(request: web.Request) -> bytes:
    _check_length(request)
    limit = _max_bytes(request)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than {limit >> 20} MiB (BLAST_API_MAX_UPLOAD_MB)")
        parts.append(chunk)
    return b"".join(parts)


async def read_json(request: web.Request, model: type[M], *, required: bool = True) -> M:
    """The JSON body validated by `model` (400 if it is not JSON, 422 if it does not fit)."""
    body = await _read_body(request)
    if not body.strip():
        if required:
            raise ApiProblem(422, f"a JSON body is needed ({model.__name__})")
        return model.model_validate({})
    if request.content_type != "application/json":
        raise ApiProblem(415, f"send the body as application/json, not {request.content_type}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, f"the body is not valid JSON: {exc}") from None
    return model.model_validate(data)


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string validated by `model`; list fields take repeated or comma-separated values."""
    unknown = sorted(set(request.query) - set(model.model_fields))
    if unknown:
        raise ApiProblem(
            422, f"unknown query parameter {unknown[0]!r} (allowed: {', '.join(model.model_fields)})"
        )
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        values = request.query.getall(name, [])
        if not values:
            continue
        if get_origin(info.annotation) is list:
            items = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
            data[name] = [v.upper() for v in items] if name == "status" else items
        else:
            data[name] = values[-1]
    return model.model_validate(data)


def _cursor(value: str | None, *, largest: int) -> int | None:
    """A page cursor (an id); `largest` is the largest id the list can hold."""
    if value is None:
        return None
    if not value.isdigit() or int(value) > largest:
        raise ApiProblem(422, "cursor: not a cursor of this list (give next_cursor of the previous page)")
    return int(value)


def _blast_id(request: web.Request) -> int:
    blast_id = int(request.match_info["blast_id"])
    if blast_id > MAX_BLAST_ID:
        raise NotFound(f"blast {blast_id} does not exist")
    return blast_id


def respond(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=model.model_dump_json().encode(), content_type="application/json", headers=headers
    )


def _counts(values: dict[str, int]) -> Counts:
    return Counts.model_validate({k: values.get(k, 0) for k in Counts.model_fields})


async def _idempotent(request: web.Request, run: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """Run a change once per Idempotency-Key: a retry gets the first successful answer."""
    key = idempotency.header_key(request)
    if key is None:
        return await run()
    stored = await idempotency.replay(key, request)
    if stored is not None:
        return stored
    response = await run()
    if 200 <= response.status < 300:
        await idempotency.remember(key, request, response, token_name=request_token(request).name)
    return response


# --- blasts -------------------------------------------------------------------------------------------------------


async def create_blast(request: web.Request) -> web.Response:
    settings = _settings(request)
    token = request_token(request)
    header_key = idempotency.header_key(request)
    if header_key is not None:
        stored = await idempotency.replay(header_key, request)
        if stored is not None:
            return stored
    _check_length(request)
    async with contextlib.AsyncExitStack() as stack:
        if request.content_type == "multipart/form-data":
            fields, path, shown = await _read_form(request, stack)
        elif request.content_type == "application/json":
            body = await read_json(request, CreateBlastJson)
            fields, shown = body, "the recipients list"
            path = await blast_import.spool_to_file(
                _json_as_csv(body.recipients), max_bytes=_max_bytes(request), what="the recipients list"
            )
            stack.callback(_unlink, path)
        else:
            raise ApiProblem(
                415,
                "send the blast as application/json (recipients as a list) or multipart/form-data "
                f"(recipients as a CSV file), not {request.content_type}",
            )
        key = header_key or fields.key
        if header_key and fields.key and fields.key != header_key:
            raise ApiProblem(422, "the Idempotency-Key header and the body's key differ; give one of them")
        if header_key is None and key is not None:
            stored = await idempotency.replay(key, request)
            if stored is not None:
                return stored
        warnings: list[str] = []
        check = sender_service.messaging_limit_check(
            settings, strict=fields.strict, warnings=warnings, strict_name="strict"
        )
        result = await blasts.create_blast(
            settings=settings,
            name=fields.name,
            template=fields.template,
            language=fields.language,
            recipients=path,
            recipients_name=shown,
            send_at=fields.send_at,
            valid_until=fields.valid_until,
            client_key=key,
            # names compared as the CLI's --const (and a CSV header) compare them
            constants={k.lower(): v for k, v in fields.constants.items()},
            draft=fields.draft,
            actor=token.actor,
            senders=sender_service.parse_pool(fields.sender, fields.senders),
            check_accepted=check,
            local_time=fields.local_time,
            timezone=fields.timezone,
            quiet_hours=fields.quiet_hours,
        )
    report = ImportReport(
        id=result.id,
        status=result.status,
        existing=result.existing,
        accepted=result.recipients,
        rejected_total=result.rejected_total,
        duplicates=result.duplicates,
        rejected=[RejectedRowOut(row=r.row, value=r.value, reason=r.reason) for r in result.rejected],
        messaging_limit_warning=warnings[0] if warnings else None,
        quiet_hours=result.quiet_note,
    )
    if result.existing:
        # The key named a blast made by the CLI or by a concurrent first try: its first answer if stored.
        stored = await idempotency.replay(key, request) if key else None
        return stored or respond(report, 200)
    response = respond(report, 201, headers={"Location": f"{API_PREFIX}/blasts/{result.id}"})
    if key is not None:
        await idempotency.remember(key, request, response, token_name=token.name)
    return response


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


async def _read_form(request: web.Request, stack: contextlib.AsyncExitStack) -> tuple[BlastFields, Path, str]:
    """The form's fields and its recipients file, spooled to a temporary file as it streams in."""
    try:
        return await _read_form_parts(request, stack)
    except ValidationError:
        raise  # the fields' validation (a ValueError too): 422
    except ValueError as exc:  # aiohttp's multipart reader: no boundary, a broken part …
        raise ApiProblem(400, f"the body is not a valid multipart/form-data form: {exc}") from None


async def _read_form_parts(
    request: web.Request, stack: contextlib.AsyncExitStack
) -> tuple[BlastFields, Path, str]:
    reader = await request.multipart()
    values: dict[str, Any] = {}
    constants: dict[str, str] = {}
    path: Path | None = None
    shown = "upload"
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > MAX_FORM_PARTS or not isinstance(part, BodyPartReader):
            raise ApiProblem(400, "the form has too many or nested parts")
        name = part.name or ""
        if name == "recipients":
            if path is not None:
                raise ApiProblem(422, "recipients: give one file")
            shown = (part.filename or "upload")[:200]
            path = await blast_import.spool_to_file(
                _part_chunks(part), max_bytes=_max_bytes(request), what=f"recipients file {shown}"
            )
            stack.callback(_unlink, path)
        elif name == "const":
            item = await _form_text(part)
            if "=" not in item:
                raise ApiProblem(422, f"const: {item!r} is not NAME=VALUE")
            key, value = item.split("=", 1)
            constants[key.strip().lower()] = value
        elif name in FORM_FIELDS:
            values[name] = await _form_text(part)
        else:
            raise ApiProblem(
                422,
                f"unknown form field {name!r} (allowed: recipients, const, {', '.join(sorted(FORM_FIELDS))})",
            )
    if path is None:
        raise ApiProblem(422, "recipients: the form needs a CSV file part named 'recipients'")
    fields = BlastFields.model_validate(values | {"constants": constants})
    return fields, path, shown


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(READ_CHUNK):
        yield chunk


async def _form_text(part: BodyPartReader) -> str:
    data = b""
    async for chunk in _part_chunks(part):
        data += chunk
        if len(data) > MAX_FORM_FIELD:
            raise ApiProblem(422, f"{part.name}: longer than {MAX_FORM_FIELD} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiProblem(422, f"{part.name}: not UTF-8") from None


async def _json_as_csv(items: Sequence[RecipientIn]) -> AsyncIterator[bytes]:
    """A JSON recipients list as the CSV the importer reads (phone, then every parameter named in the list), so
    that the list meets exactly the rules of a file: item N is row N."""
    keys: dict[str, None] = {}
    lowered: list[dict[str, str]] = []
    for index, item in enumerate(items, 1):
        params = {k.lower(): v for k, v in item.params.items()}
        if len(params) != len(item.params):
            raise ValidationFailed(
                f"recipients[{index}].params: a parameter is named twice (names ignore case)"
            )
        if "phone" in params:
            raise ValidationFailed(
                f"recipients[{index}].params: 'phone' is not a parameter (give it as phone)"
            )
        keys.update(dict.fromkeys(params))
        lowered.append(params)
    columns = list(keys)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phone", *columns])
    for n, (item, params) in enumerate(zip(items, lowered, strict=True), 1):
        writer.writerow([item.phone, *(params.get(c, "") for c in columns)])
        if n % JSON_CSV_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def list_blasts(request: web.Request) -> web.Response:
    query = parse_query(request, BlastListQuery)
    items = await blast_reads.list_blasts(
        statuses=query.status,
        text=query.q,
        limit=query.limit + 1,
        before_id=_cursor(query.cursor, largest=MAX_BLAST_ID),
    )
    page = items[: query.limit]
    return respond(
        BlastPage(
            items=[
                BlastSummaryOut(
                    id=b.id,
                    name=b.name,
                    template=b.template,
                    language=b.language,
                    status=b.status,
                    send_at=b.send_at,
                    total=b.total,
                    counts=_counts(b.counts),
                    last_error=b.last_error,
                )
                for b in page
            ],
            next_cursor=str(page[-1].id) if len(items) > query.limit else None,
        )
    )


async def show_blast(request: web.Request) -> web.Response:
    d = await blast_reads.show_blast(_blast_id(request))
    zones = await blast_reads.zone_progress(d.id) if d.local_time else []
    cost = await cost_estimate.blast_cost(d.id)  # as `blast show --json` gives it
    return respond(
        BlastDetailOut(
            id=d.id,
            name=d.name,
            template=d.template,
            language=d.language,
            status=d.status,
            send_at=d.send_at,
            valid_until=d.valid_until,
            started_at=d.started_at,
            finished_at=d.finished_at,
            created_at=d.created_at,
            created_by=d.created_by,
            error=d.error,
            error_code=d.error_code,
            total=d.total,
            counts=_counts(d.counts),
            constants=d.constants,
            cost=BlastCostOut(
                estimate=CostOut.model_validate(cost.estimate.to_json()),
                actual=CostOut.model_validate(cost.actual.to_json()),
            ),
            senders=await sender_service.pool_of(d.id),
            local_time=d.local_time,
            timezone=d.timezone,
            zones=[ZoneOut.model_validate(z.to_json()) for z in zones],
        )
    )


async def list_recipients(request: web.Request) -> web.Response:
    query = parse_query(request, RecipientListQuery)
    page = await recipients.page_recipients(
        _blast_id(request),
        statuses=query.status,
        after_id=_cursor(query.cursor, largest=MAX_RECIPIENT_ID) or 0,
        limit=query.limit,
    )
    return respond(
        RecipientPageOut(
            items=[
                RecipientOut(
                    id=r.id,
                    row=r.row,
                    phone=r.phone,
                    status=r.status,
                    attempts=r.attempts,
                    wamid=r.wamid,
                    error_code=r.error_code,
                    error_text=r.error_text,
                    sent_at=r.sent_at,
                    delivered_at=r.delivered_at,
                    read_at=r.read_at,
                    failed_at=r.failed_at,
                )
                for r in page.rows
            ],
            next_cursor=str(page.next_after_id) if page.next_after_id is not None else None,
        )
    )


async def _status_now(blast_id: int) -> BlastStatus:
    return (await blast_reads.show_blast(blast_id)).status


async def _status_action(request: web.Request, action: Callable[..., Awaitable[Any]]) -> web.Response:
    """A body-less action on one blast (the service's own rule decides), answered with the blast's new status."""

    async def run() -> web.Response:
        blast_id = _blast_id(request)
        await action(blast_id, settings=_settings(request), actor=request_token(request).actor)
        return respond(ActionOut(id=blast_id, status=await _status_now(blast_id)))

    await read_json(request, EmptyBody, required=False)
    return await _idempotent(request, run)


async def pause_blast(request: web.Request) -> web.Response:
    return await _status_action(request, blast_actions.pause_blast)


async def resume_blast(request: web.Request) -> web.Response:
    return await _status_action(request, blast_actions.resume_blast)


async def cancel_blast(request: web.Request) -> web.Response:
    async def run() -> web.Response:
        blast_id = _blast_id(request)
        n = await blast_actions.cancel_blast(
            blast_id, settings=_settings(request), actor=request_token(request).actor
        )
        return respond(ActionOut(id=blast_id, status=await _status_now(blast_id), recipients_cancelled=n))

    await read_json(request, EmptyBody, required=False)
    return await _idempotent(request, run)


async def retry_blast(request: web.Request) -> web.Response:
    body = await read_json(request, RetryIn, required=False)

    async def run() -> web.Response:
        blast_id = _blast_id(request)
        r = await blast_actions.retry_blast(
            blast_id,
            settings=_settings(request),
            include_unknown=body.include_unknown,
            actor=request_token(request).actor,
        )
        return respond(
            RetryOut(
                id=blast_id,
                status=await _status_now(blast_id),
                requeued=r.requeued,
                skipped_opted_out=r.skipped_opted_out,
                skipped_recent_cap=r.skipped_recent_cap,
            )
        )

    return await _idempotent(request, run)


async def reschedule_blast(request: web.Request) -> web.Response:
    body = await read_json(request, RescheduleIn)

    async def run() -> web.Response:
        blast_id = _blast_id(request)
        done = await blast_actions.reschedule_blast(
            blast_id, settings=_settings(request), send_at=body.send_at, actor=request_token(request).actor
        )
        return respond(
            RescheduleOut(
                id=blast_id,
                status=await _status_now(blast_id),
                send_at=done.send_at,
                quiet_hours=done.quiet_note,
            )
        )

    return await _idempotent(request, run)


# --- templates, search, queue ---------------------------------------------------------------------------------


async def list_templates(request: web.Request) -> web.Response:
    query = parse_query(request, TemplateListQuery)
    items = await templates.list_templates(statuses=query.status)
    return respond(
        TemplateList(
            items=[
                TemplateOut(
                    name=t.name,
                    language=t.language,
                    category=t.category,
                    status=t.status,
                    parameter_format=t.parameter_format,
                    parameters=list(t.parameters),
                    rejection_reason=t.rejection_reason,
                    last_synced_at=t.last_synced_at,
                )
                for t in items
            ]
        )
    )


async def search(request: web.Request) -> web.Response:
    query = parse_query(request, SearchQuery)
    hits = await recipients.search_phone(query.phone, settings=_settings(request), limit=query.limit)
    return respond(
        SearchResult(
            items=[
                SearchHitOut(
                    blast_id=h.blast_id,
                    blast=h.blast_name,
                    template=h.template,
                    language=h.language,
                    blast_status=BlastStatus(h.blast_status),
                    status=h.status,
                    wamid=h.wamid,
                    error_code=h.error_code,
                    error=h.error_text,
                    sent_at=h.sent_at,
                    delivered_at=h.delivered_at,
                    read_at=h.read_at,
                    failed_at=h.failed_at,
                )
                for h in hits
            ]
        )
    )


async def queue(request: web.Request) -> web.Response:
    stats = (await queue_stats(_settings(request))).to_json()
    return respond(
        QueueOut(
            streams=[StreamOut.model_validate(s) for s in stats["streams"]],
            daemons=[DaemonOut.model_validate(d) for d in stats["daemons"]],
            rate=RateOut.model_validate(stats["rate"]),
        )
    )


_ID = "/blasts/{blast_id:[0-9]{1,18}}"
_BLAST_ERRORS = (401, 403, 404, 409, 422)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/blasts",
        create_blast,
        "createBlast",
        "Create a blast",
        ImportReport,
        status=201,
        body=CreateBlastJson,
        form=BlastFields,
        errors=(400, 401, 403, 413, 415, 422),
        description="Recipients as a JSON list, or as a CSV file streamed in multipart/form-data (the CLI's "
        "file format). Answers with the import report: accepted rows, rejected rows with reasons, duplicates. "
        "With an Idempotency-Key header (or the body's key) a retry returns the first answer, never a second "
        "blast; an existing blast with that key (made by the CLI) is answered with 200 and existing: true. "
        "As `blast-console blast create`: sender or senders (a pool of one WABA), strict (the messaging-limit "
        "check refuses instead of answering with messaging_limit_warning), local_time with timezone, and "
        "quiet_hours (the answer's quiet_hours tells who waits); an unknown sender, a pool mixing WABAs, a bad "
        "zone or window is a 422 and creates nothing.",
    ),
    Operation(
        "GET",
        "/blasts",
        list_blasts,
        "listBlasts",
        "List blasts, newest first",
        BlastPage,
        query=BlastListQuery,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        _ID,
        show_blast,
        "getBlast",
        "One blast with its counts per bucket",
        BlastDetailOut,
        errors=(401, 404),
    ),
    Operation(
        "GET",
        _ID + "/recipients",
        list_recipients,
        "listRecipients",
        "A blast's recipients in id order",
        RecipientPageOut,
        query=RecipientListQuery,
        errors=(401, 404, 422),
    ),
    Operation(
        "POST",
        _ID + "/pause",
        pause_blast,
        "pauseBlast",
        "Pause a scheduled or sending blast",
        ActionOut,
        body=EmptyBody,
        body_required=False,
        errors=_BLAST_ERRORS,
    ),
    Operation(
        "POST",
        _ID + "/resume",
        resume_blast,
        "resumeBlast",
        "Resume a paused blast",
        ActionOut,
        body=EmptyBody,
        body_required=False,
        errors=_BLAST_ERRORS,
    ),
    Operation(
        "POST",
        _ID + "/cancel",
        cancel_blast,
        "cancelBlast",
        "Cancel a blast: no request leaves after this; pending recipients are cancelled",
        ActionOut,
        body=EmptyBody,
        body_required=False,
        errors=_BLAST_ERRORS,
    ),
    Operation(
        "POST",
        _ID + "/retry",
        retry_blast,
        "retryBlast",
        "Re-queue a FAILED or partly failed blast's retryable recipients",
        RetryOut,
        body=RetryIn,
        body_required=False,
        errors=_BLAST_ERRORS,
    ),
    Operation(
        "POST",
        _ID + "/reschedule",
        reschedule_blast,
        "rescheduleBlast",
        "Give a blast a new send time",
        RescheduleOut,
        body=RescheduleIn,
        errors=(400, *_BLAST_ERRORS),
    ),
    Operation(
        "GET",
        "/templates",
        list_templates,
        "listTemplates",
        "Templates with their Meta status",
        TemplateList,
        query=TemplateListQuery,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/search",
        search,
        "searchPhone",
        "What was sent to one number across all blasts, newest first",
        SearchResult,
        query=SearchQuery,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/queue",
        queue,
        "queueStats",
        "Work streams, daemons alive and the send rate",
        QueueOut,
        errors=(401, 503),
    ),
)
