"""The OpenAPI 3.1 document: every route is in it, and real answers of every operation (successes and problems)
fit the schemas it gives for them."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from daemon.http.api.handlers import OPERATIONS
from shared.services import transitions
from shared.services.transitions import SendOutcome
from shared.status import BlastStatus, RecipientStatus
from tests.api.conftest import ApiEnv
from tests.factories import make_blast, make_template

B, R = BlastStatus, RecipientStatus


def check(schema: dict[str, Any], value: Any, doc: dict[str, Any], where: str = "$") -> None:
    """Validate `value` against the subset of JSON Schema 2020-12 that pydantic writes (fails with the path)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        check(doc["components"]["schemas"][name], value, doc, where)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                check(option, value, doc, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: fits no anyOf option: {errors}")
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != const {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        python: dict[str, type | tuple[type, ...]] = {
            "object": dict,
            "array": list,
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
            "null": type(None),
        }
        ok = any(
            isinstance(value, python[k]) and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        assert ok, f"{where}: {value!r} is not {kinds}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{where}: {name!r} missing"
        for name, item in value.items():
            if name in properties:
                check(properties[name], item, doc, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{where}: {name!r} is not in the schema")
            elif isinstance(schema.get("additionalProperties"), dict):
                check(schema["additionalProperties"], item, doc, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(schema["items"], item, doc, f"{where}[{i}]")
    if isinstance(value, str) and schema.get("format") == "date-time":
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$", value), (
            f"{where}: {value!r}"
        )


async def test_every_route_is_documented(api: ApiEnv) -> None:
    doc = await (await api.get("/openapi.json", auth=None)).json()
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/api/v1"}]
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    routes = {(op.method, re.sub(r"\{(\w+):[^/]*\}", r"{\1}", op.path)) for op in OPERATIONS}
    assert routes | {("GET", "/openapi.json")} == documented
    create = doc["paths"]["/blasts"]["post"]["requestBody"]["content"]
    assert set(create) == {"application/json", "multipart/form-data"}
    assert (
        create["multipart/form-data"]["schema"]["properties"]["recipients"]["contentMediaType"] == "text/csv"
    )
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path != "/openapi.json":
                assert "401" in op["responses"], (method, path)


async def test_real_answers_fit_the_document(api: ApiEnv) -> None:
    doc = await (await api.get("/openapi.json", auth=None)).json()
    checked: set[tuple[str, str, int]] = set()

    async def call(method: str, path: str, template: str, **kwargs: Any) -> dict[str, Any]:
        resp = await (api.get(path, **kwargs) if method == "GET" else api.post(path, **kwargs))
        body = await resp.json(content_type=None)
        responses = doc["paths"][template][method.lower()]["responses"]
        assert str(resp.status) in responses, (method, path, resp.status, body)
        content = responses[str(resp.status)]["content"]
        assert resp.content_type in content, (method, path, resp.content_type)
        check(content[resp.content_type]["schema"], body, doc)
        checked.add((method, template, resp.status))
        assert isinstance(body, dict)
        return body

    recipients = [{"phone": "+6281234567890", "params": {"1": "a", "2": "b"}}, {"phone": "x"}]
    new = {"name": "n", "template": "order_update", "language": "en_US", "recipients": recipients}
    created = await call("POST", "/blasts", "/blasts", json=new | {"valid_until": "+2d"})
    form = aiohttp.FormData()
    for key, value in {"name": "n", "template": "order_update", "language": "en_US", "draft": "1"}.items():
        form.add_field(key, value)
    form.add_field("recipients", b"phone,1,2\n+6281234567891,a,b\n", filename="r.csv")
    await call("POST", "/blasts", "/blasts", data=form)
    await call("POST", "/blasts", "/blasts", json={"name": "n"})  # 422
    await call("POST", "/blasts", "/blasts", auth="viewer", json=new)  # 403
    await call("GET", "/blasts", "/blasts", auth=None)  # 401
    blast_id = created["id"]
    one = f"/blasts/{blast_id}"
    await call("GET", "/blasts?limit=1", "/blasts")
    await call("GET", one, "/blasts/{blast_id}")
    await call("GET", "/blasts/99", "/blasts/{blast_id}")  # 404
    await call("GET", one + "/recipients", "/blasts/{blast_id}/recipients")
    await call("POST", one + "/reschedule", "/blasts/{blast_id}/reschedule", json={"send_at": "+1h"})
    await call("POST", one + "/pause", "/blasts/{blast_id}/pause")
    await call("POST", one + "/pause", "/blasts/{blast_id}/pause")  # 409
    await call("POST", one + "/resume", "/blasts/{blast_id}/resume")
    await call("POST", one + "/cancel", "/blasts/{blast_id}/cancel")
    template = await make_template(name="promo", language="id")
    done = await make_blast(template, n=1, status=B.PROCESSING)
    (rid,) = await done.recipients.all().values_list("id", flat=True)  # type: ignore[attr-defined]
    await transitions.move_recipients(done.id, R.SENDING, sources=[R.PENDING])
    await transitions.record_send_outcomes([SendOutcome(rid, done.id, R.FAILED, error_code=131026)])
    await transitions.transition_blast(done.id, B.FAILED, actor="t", action="fail")
    await call("POST", f"/blasts/{done.id}/retry", "/blasts/{blast_id}/retry")
    await call("GET", "/templates", "/templates")
    await call("GET", "/search?phone=%2B6281234567890", "/search")
    await call("GET", "/queue", "/queue")
    assert {(m, p) for m, p, _ in checked} == {
        (op.method, re.sub(r"\{(\w+):[^/]*\}", r"{\1}", op.path)) for op in OPERATIONS
    }
