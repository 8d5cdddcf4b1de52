"""Provides the OpenAPI 3.1 document of the API, generated from the operations table and the pydantic models that
validate its requests and shape its answers (pydantic's JSON Schema is OpenAPI 3.1's dialect)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from daemon.http.api.handlers import OPERATIONS, Operation
from daemon.http.api.models import Problem
from daemon.http.api.problems import API_PREFIX, CONTENT_TYPE

VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"


def _openapi_path(path: str) -> str:
    """aiohttp's `{blast_id:[0-9]{1,18}}` as OpenAPI's `{blast_id}`."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "{":
            depth, j = 0, i
            while True:
                depth += {"{": 1, "}": -1}.get(path[j], 0)
                if depth == 0:
                    break
                j += 1
            out.append("{" + path[i + 1 : j].split(":", 1)[0] + "}")
            i = j + 1
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _models(ops: Sequence[Operation]) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    seen: dict[tuple[type[BaseModel], str], None] = {}
    for op in ops:
        for model in (op.body, op.form):
            if model is not None:
                seen[(model, "validation")] = None
        seen[(op.response, "serialization")] = None
    seen[(Problem, "serialization")] = None
    return [(m, mode) for (m, mode) in seen]  # type: ignore[misc]  # modes are the two literals above


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF)
    defs.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "description"},
        }
        if "description" in prop:
            param["description"] = prop["description"]
        if prop.get("type") == "array":
            param["style"] = "form"
            param["explode"] = True
        params.append(param)
    return params


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {CONTENT_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}},
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (served at /api/v1/openapi.json)."""
    refs, top = models_json_schema(_models(OPERATIONS), ref_template=_REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "description": (op.description + " " if op.description else "")
            + ("Needs an operator token." if op.changes else "Any token (viewer or operator)."),
            "responses": {
                str(op.status): {
                    "description": HTTPStatus(op.status).phrase,
                    "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
                },
                **{str(code): _problem(code) for code in sorted({*op.errors, 401})},
            },
        }
        parameters: list[dict[str, Any]] = []
        if "{blast_id" in op.path:
            parameters.append(
                {"name": "blast_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            )
        if op.query is not None:
            parameters.extend(_query_parameters(op.query, schemas))
        if op.changes:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "A retry with the same key returns the first successful answer.",
                    "schema": {"type": "string", "maxLength": 200},
                }
            )
        if parameters:
            item["parameters"] = parameters
        content: dict[str, Any] = {}
        if op.body is not None:
            content["application/json"] = {"schema": refs[(op.body, "validation")]}
        if op.form is not None:
            form = dict(schemas[op.form.__name__])
            properties = dict(form["properties"])
            properties.pop("constants", None)
            properties["const"] = {
                "type": "array",
                "items": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}=.*$"},
                "description": "NAME=VALUE parameter for every recipient (repeatable), as blast create --const.",
            }
            properties["recipients"] = {
                "type": "string",
                "contentMediaType": "text/csv",
                "description": "The recipients CSV (the CLI's format), streamed to the importer.",
            }
            content["multipart/form-data"] = {
                "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": [*form.get("required", []), "recipients"],
                },
                "encoding": {"recipients": {"contentType": "text/csv"}},
            }
        if content:
            item["requestBody"] = {"required": op.body_required, "content": content}
        paths.setdefault(_openapi_path(op.path), {})[op.method.lower()] = item
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OK", "content": {"application/json": {}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "blast API",
            "version": VERSION,
            "description": "Create and follow WhatsApp blasts. Times are ISO 8601 with an offset; errors are "
            "RFC 9457 problem details whose `detail` is the CLI's one-line message.",
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `blast-console token create --name NAME --role operator|viewer`.",
                }
            },
        },
    }
