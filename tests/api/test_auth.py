"""API authentication: Bearer tokens, roles, revocation, failed attempts limited per address and logged without
the token, and every change audited with the token's name."""

from __future__ import annotations

import logging

import pytest

from daemon.http.api.auth import AUTH_FAILURES_ALLOWED
from shared.models import ApiToken, AuditLog
from shared.services import tokens
from tests.api.conftest import ApiEnv, problem_of

READS = (
    "/blasts",
    "/blasts/1",
    "/blasts/1/recipients",
    "/templates",
    "/search?phone=%2B6281234567890",
    "/queue",
)
CHANGES = (
    "/blasts",
    "/blasts/1/pause",
    "/blasts/1/resume",
    "/blasts/1/cancel",
    "/blasts/1/retry",
    "/blasts/1/reschedule",
)


async def test_every_endpoint_refuses_a_missing_or_bad_token(api: ApiEnv) -> None:
    for path in READS:
        resp = await api.get(path, auth=None)
        await problem_of(resp, 401)
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="blast"'
    for path in CHANGES:
        await problem_of(await api.post(path, auth="blast_" + "x" * 43), 401)
    resp = await api.client.get("/api/v1/blasts", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    body = await problem_of(resp, 401)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="blast", error="invalid_token"'
    assert "token create" in body["detail"]


async def test_viewer_reads_everything_and_changes_nothing(api: ApiEnv) -> None:
    created = await api.post(
        "/blasts",
        json={
            "name": "x",
            "template": "order_update",
            "language": "en_US",
            "recipients": [{"phone": "+6281234567890", "params": {"1": "a", "2": "b"}}],
        },
    )
    assert created.status == 201
    for path in READS:
        resp = await api.get(path, auth="viewer")
        assert resp.status == 200, (path, await resp.text())
    for path in CHANGES:
        body = await problem_of(await api.post(path, auth="viewer", json={}), 403)
        assert body["detail"].startswith("token dashboard is a viewer token: it may only read")
    assert (await api.get("/blasts/1", auth="viewer")).status == 200
    assert (await (await api.get("/blasts/1")).json())["status"] == "SCHEDULED"  # nothing changed


async def test_a_revoked_token_is_refused_from_its_next_request(api: ApiEnv) -> None:
    assert (await api.get("/blasts")).status == 200
    await tokens.revoke_token("crm", actor="test")
    await problem_of(await api.get("/blasts"), 401)
    assert (await api.get("/blasts", auth="viewer")).status == 200


async def test_the_token_is_stored_only_as_a_hash(api: ApiEnv) -> None:
    rows = await ApiToken.all().values_list("token_hash", "prefix")
    assert len(rows) == 2
    for token_hash, prefix in rows:
        assert api.operator not in token_hash and api.viewer not in token_hash
        assert len(prefix) == tokens.SHOWN_PREFIX_LEN
    assert {h for h, _ in rows} == {tokens.hash_token(api.operator), tokens.hash_token(api.viewer)}


async def test_failed_attempts_are_limited_per_address_and_logged_without_the_token(
    api: ApiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    wrong = "blast_" + "W" * 43
    for _ in range(AUTH_FAILURES_ALLOWED):
        await problem_of(await api.get("/blasts", auth=wrong), 401)
    resp = await api.get("/blasts", auth=wrong)
    body = await problem_of(resp, 429)
    assert int(resp.headers["Retry-After"]) >= 1 and "too many failed logins" in body["detail"]
    # the right token from the same address waits too (the limit is per address, not per token) …
    await problem_of(await api.get("/blasts"), 429)
    # … but another address behind the local proxy does not
    ok = await api.client.get(
        "/api/v1/blasts", headers={**api.headers(api.operator), "X-Forwarded-For": "203.0.113.9"}
    )
    assert ok.status == 200
    text = caplog.text
    assert "refused: unknown token" in text and "too many failed logins" in text
    for secret in (wrong, api.operator, api.viewer, wrong[6:20]):
        assert secret not in text


async def test_forwarded_for_is_trusted_only_from_a_local_proxy() -> None:
    from aiohttp.test_utils import make_mocked_request

    from daemon.http.api.auth import client_address

    forwarded = make_mocked_request("GET", "/", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    assert (
        client_address(forwarded.clone(remote="127.0.0.1")) == "203.0.113.7"
    )  # the entry the proxy appended
    assert client_address(forwarded.clone(remote="::1")) == "203.0.113.7"
    remote = forwarded.clone(remote="192.0.2.5")
    assert client_address(remote) == "192.0.2.5"


async def test_changes_are_audited_with_the_tokens_name(api: ApiEnv) -> None:
    created = await api.post(
        "/blasts",
        json={
            "name": "x",
            "template": "order_update",
            "language": "en_US",
            "recipients": [{"phone": "+6281234567890", "params": {"1": "a", "2": "b"}}],
        },
    )
    blast_id = (await created.json())["id"]
    assert (await api.post(f"/blasts/{blast_id}/pause")).status == 200
    assert (await api.post(f"/blasts/{blast_id}/cancel")).status == 200
    rows = (
        await AuditLog.filter(entity="blast", entity_id=str(blast_id))
        .order_by("id")
        .values_list("actor", "action")
    )
    assert rows == [("api:crm", "create"), ("api:crm", "pause"), ("api:crm", "cancel")]


async def test_the_openapi_document_needs_no_token(api: ApiEnv) -> None:
    resp = await api.get("/openapi.json", auth=None)
    assert resp.status == 200
    assert (await resp.json())["openapi"] == "3.1.0"
