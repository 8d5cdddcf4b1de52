"""Tests of the fake Graph API: Meta's shapes and checks, limits, faults, templates, webhooks, controls."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.fake_graph import SIGNATURE_HEADER, FakeConfig, FakeGraph, sign

TOKEN = "fake-test-token"
SECRET = "fake-test-app-secret"
REPO = Path(__file__).resolve().parents[2]

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way."},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "URL", "text": "Track", "url": "https://x.test/t/{{1}}"}],
            },
        ],
    },
    {
        "name": "spring_sale",
        "language": "en_US",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Hi {{first_name}}, use code {{code}}."}],
    },
    {
        "name": "receipt",
        "language": "en",
        "components": [{"type": "HEADER", "format": "DOCUMENT"}, {"type": "BODY", "text": "Your receipt."}],
    },
]


def good_send(to: str = "+6281234567890") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "biz_opaque_callback_data": "blast=42;rcpt=9001;try=1",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US", "policy": "deterministic"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "A-1"}]},
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ada"},
                        {
                            "type": "currency",
                            "currency": {"fallback_value": "$100.00", "code": "USD", "amount_1000": 100000},
                        },
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "A-1"}],
                },
            ],
        },
    }


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


class Receiver:
    """A webhook receiver on a loopback port that checks signatures and can answer 500 first."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.posts: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.fail_next = 0
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500)
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
            self.bad_signatures += 1
            return web.Response(status=403)
        self.raw.append(body)
        self.posts.append(json.loads(body))
        return web.Response(text="ok")

    def statuses(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for post in self.posts:
            for entry in post["entry"]:
                for change in entry["changes"]:
                    if change["field"] == "messages":
                        out.extend(change["value"].get("statuses", []))
        return out

    def template_events(self) -> list[dict[str, Any]]:
        return [
            change["value"]
            for post in self.posts
            for entry in post["entry"]
            for change in entry["changes"]
            if change["field"] == "message_template_status_update"
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/webhook", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield rec, str(server.make_url("/webhook"))
    finally:
        await server.close()


@pytest.fixture
async def fake(receiver: tuple[Receiver, str]) -> AsyncIterator[FakeGraph]:
    config = FakeConfig(
        access_token=TOKEN,
        app_secret=SECRET,
        mps=None,
        pair_rate_per_s=None,
        webhook_url=receiver[1],
        webhook_delay_ms=5,
        webhook_jitter_ms=0,
    )
    async with FakeGraph(config, templates=TEMPLATES, seed=3) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post_send(
    http: aiohttp.ClientSession, fake: FakeGraph, body: Any, token: str | None = TOKEN, version: str = "v24.0"
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = f"{fake.base_url}/{version}/{fake.config.phone_number_id}/messages"
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def get_json(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url, params=params, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        return resp.status, await resp.json()


# --- shapes ---
async def test_success_has_metas_shape(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    status, body = await post_send(http, fake, good_send(), version="v25.0")
    assert status == 200
    assert set(body) == {"messaging_product", "contacts", "messages"}
    assert body["contacts"] == [{"input": "+6281234567890", "wa_id": "6281234567890"}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.") and message["message_status"] == "accepted"


async def test_error_envelope(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    body = good_send()
    body["template"]["name"] = "nope"
    status, answer = await post_send(http, fake, body)
    assert status in (400, 404)
    error = answer["error"]
    assert {"message", "type", "code", "error_data", "fbtrace_id"} <= set(error)
    assert error["code"] == 132001 and error["message"].startswith("(#132001) ")
    assert error["error_data"]["messaging_product"] == "whatsapp" and "nope" in error["error_data"]["details"]


async def test_token_check(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    status, answer = await post_send(http, fake, good_send(), token=None)
    assert (status, answer["error"]["code"]) == (401, 190)
    status, answer = await post_send(http, fake, good_send(), token="someone-elses")
    assert (status, answer["error"]["code"], answer["error"]["error_subcode"]) == (401, 190, 463)
    url = f"{fake.url}/{fake.config.phone_number_id}/messages?access_token={TOKEN}"
    async with http.post(url, json=good_send()) as resp:
        assert resp.status == 200
    assert fake.counts["accepted"] == 1


async def test_unknown_phone_number_id(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{fake.url}/999/messages", json=good_send(), headers={"Authorization": f"Bearer {TOKEN}"}
    ) as r:
        answer = await r.json()
    assert r.status == 400 and answer["error"]["code"] == 100 and answer["error"]["error_subcode"] == 33


def _without_parameter_names(body: dict[str, Any]) -> None:
    body["template"]["name"] = "spring_sale"
    body["template"]["components"] = [
        {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "S"}]}
    ]


def _wrong_names(body: dict[str, Any]) -> None:
    body["template"]["name"] = "spring_sale"
    body["template"]["components"] = [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Ada"},
                {"type": "text", "parameter_name": "coupon", "text": "S"},
            ],
        }
    ]


def _body_params(body: dict[str, Any], params: list[dict[str, Any]]) -> None:
    body["template"]["components"][1]["parameters"] = params


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None], int]] = [
    ("no messaging_product", lambda b: b.pop("messaging_product"), 100),
    ("bad number", lambda b: b.update(to="12345"), 131009),
    ("letters in number", lambda b: b.update(to="+62 81x 234"), 131009),
    ("text outside window", lambda b: b.update(type="text"), 131047),
    ("unsupported type", lambda b: b.update(type="sticker"), 131051),
    ("no template name", lambda b: b["template"].pop("name"), 131008),
    ("language mismatch", lambda b: b["template"]["language"].update(code="en"), 132001),
    ("too few body params", lambda b: b["template"]["components"][1]["parameters"].pop(), 132000),
    ("no header param", lambda b: b["template"]["components"].pop(0), 132000),
    ("no url button", lambda b: b["template"]["components"].pop(), 132000),
    ("button without index", lambda b: b["template"]["components"][2].pop("index"), 131008),
    ("bad component type", lambda b: b["template"]["components"][0].update(type="footer"), 100),
    (
        "newline in body text",
        lambda b: _body_params(b, [{"type": "text", "text": "a\nb"}, {"type": "text", "text": "c"}]),
        131009,
    ),
    (
        "empty text",
        lambda b: _body_params(b, [{"type": "text", "text": ""}, {"type": "text", "text": "c"}]),
        131008,
    ),
    (
        "currency incomplete",
        lambda b: _body_params(b, [{"type": "text", "text": "a"}, {"type": "currency", "currency": {}}]),
        131008,
    ),
    ("named needs parameter_name", _without_parameter_names, 100),
    ("named with wrong names", _wrong_names, 132000),
    ("callback too long", lambda b: b.update(biz_opaque_callback_data="x" * 513), 100),
]


@pytest.mark.parametrize(("change", "code"), [(m[1], m[2]) for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
async def test_send_validation(
    fake: FakeGraph, http: aiohttp.ClientSession, change: Callable[[dict[str, Any]], None], code: int
) -> None:
    body = copy.deepcopy(good_send())
    change(body)
    status, answer = await post_send(http, fake, body)
    assert status >= 400 and answer["error"]["code"] == code, answer
    assert fake.received[-1].outcome == "error" and fake.received[-1].code == code


async def test_media_header_type_must_match(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    body = good_send()
    body["template"] = {
        "name": "receipt",
        "language": {"code": "en"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.test/a.jpg"}}]}
        ],
    }
    assert (await post_send(http, fake, body))[1]["error"]["code"] == 132012
    body["template"]["components"][0]["parameters"] = [{"type": "document", "document": {"id": "123"}}]
    assert (await post_send(http, fake, body))[0] == 200


async def test_non_approved_templates(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    for status, code in (("PAUSED", 132015), ("DISABLED", 132016), ("REJECTED", 132001)):
        fake.set_template_status("order_update", status)
        assert (await post_send(http, fake, good_send()))[1]["error"]["code"] == code


# --- limits ---
async def test_throughput_limit_answers_130429(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.configure(mps=10.0, mps_burst=10.0)
    answers = await asyncio.gather(
        *(post_send(http, fake, good_send(f"+62812345{i:05d}")) for i in range(25))
    )
    codes = [a[1]["error"]["code"] for a in answers if a[0] != 200]
    assert 10 <= sum(a[0] == 200 for a in answers) <= 12
    assert codes and set(codes) == {130429}
    assert {a[0] for a in answers if a[0] != 200} == {400}


async def test_pair_rate_limit_answers_131056(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.configure(pair_rate_per_s=0.5, pair_burst=3)
    answers = [await post_send(http, fake, good_send()) for _ in range(4)]
    assert [a[0] for a in answers[:3]] == [200, 200, 200]
    assert answers[3][1]["error"]["code"] == 131056
    assert (await post_send(http, fake, good_send("+6281200000000")))[0] == 200


async def test_unique_recipient_budget(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.configure(unique_recipient_limit=2)
    assert (await post_send(http, fake, good_send("+6281200000001")))[0] == 200
    assert (await post_send(http, fake, good_send("+6281200000002")))[0] == 200
    assert (await post_send(http, fake, good_send("+6281200000003")))[1]["error"]["code"] == 131049
    assert (await post_send(http, fake, good_send("+6281200000001")))[0] == 200


async def test_latency_is_injected(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.configure(latency_ms=120.0, jitter_ms=10.0)
    started = time.monotonic()
    assert (await post_send(http, fake, good_send()))[0] == 200
    assert time.monotonic() - started >= 0.1


# --- faults ---
async def test_fault_every_nth_and_times(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.add_fault(mode="error", code=131000, nth=3, times=2)
    statuses = [(await post_send(http, fake, good_send()))[0] for _ in range(9)]
    assert statuses == [200, 200, 500, 200, 200, 500, 200, 200, 200]


async def test_fault_per_template_and_raw(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.add_fault(mode="raw", http_status=504, template="order_update", body="gateway timeout")
    async with http.post(
        f"{fake.url}/{fake.config.phone_number_id}/messages",
        json=good_send(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        assert resp.status == 504 and await resp.text() == "gateway timeout"


async def test_dropped_connection(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    fake.add_fault(mode="drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_send(http, fake, good_send())
    [msg] = fake.received
    assert msg.outcome == "drop" and msg.wamid is not None  # it went out; only the answer was lost


async def test_hang_is_released_when_the_fake_stops(receiver: tuple[Receiver, str]) -> None:
    async with (
        FakeGraph(FakeConfig(access_token=TOKEN), templates=TEMPLATES) as server,
        aiohttp.ClientSession() as s,
    ):
        server.add_fault(mode="hang", delay_s=60)
        task = asyncio.create_task(post_send(s, server, good_send()))
        await wait_until(lambda: len(server.received) == 1)
        started = time.monotonic()
        await server.stop()
        with contextlib.suppress(aiohttp.ClientError):
            await task
        assert time.monotonic() - started < 3


# --- webhooks ---
async def test_status_webhooks_are_signed_and_echo_callback_data(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    rec = receiver[0]
    _, answer = await post_send(http, fake, good_send("+5511987654321"))
    wamid = answer["messages"][0]["id"]
    await wait_until(lambda: len(rec.statuses()) == 3)
    assert rec.bad_signatures == 0
    sent, delivered, read = rec.statuses()
    assert [sent["status"], delivered["status"], read["status"]] == ["sent", "delivered", "read"]
    for st in (sent, delivered, read):
        assert st["id"] == wamid and st["recipient_id"] == "551187654321"
        assert st["biz_opaque_callback_data"] == "blast=42;rcpt=9001;try=1"
        assert isinstance(st["timestamp"], str) and st["timestamp"].isdigit()
    assert sent["pricing"]["pricing_model"] == "PMP" and sent["pricing"]["category"] == "utility"
    assert "errors" not in sent
    post = rec.posts[0]
    assert post["object"] == "whatsapp_business_account"
    assert (
        post["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == fake.config.phone_number_id
    )
    # The signature is over the exact bytes sent: recomputing it from the raw body matches.
    assert sign(rec.raw[0], SECRET).startswith("sha256=")


async def test_failed_webhook_per_number(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    fake.add_fault(mode="failed_webhook", code=131026, to="+6281299999999")
    status, _ = await post_send(http, fake, good_send("+6281299999999"))
    assert status == 200  # accepted now, fails later: Meta's pitfall no. 1
    await wait_until(lambda: len(receiver[0].statuses()) == 1)
    [failed] = receiver[0].statuses()
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131026
    assert {"title", "message", "error_data", "href"} <= set(failed["errors"][0])


async def test_random_failures(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    fake.configure(failure_rate=1.0, failure_codes=[131049])
    await post_send(http, fake, good_send())
    await wait_until(lambda: len(receiver[0].statuses()) == 1)
    assert receiver[0].statuses()[0]["errors"][0]["code"] == 131049


async def test_webhooks_duplicated_reordered_and_without_delivered(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    rec = receiver[0]
    fake.configure(webhook_duplicate_rate=1.0, webhook_reorder_rate=1.0, webhook_delay_ms=20)
    await post_send(http, fake, good_send())
    await wait_until(lambda: len(rec.statuses()) == 6)
    order = [s["status"] for s in rec.statuses()]
    assert sorted(order) == ["delivered", "delivered", "read", "read", "sent", "sent"]
    assert order.index("read") < order.index("sent")  # newest first, as Meta sometimes does
    fake.configure(webhook_duplicate_rate=0.0, webhook_reorder_rate=0.0, webhook_skip_delivered_rate=1.0)
    await post_send(http, fake, good_send("+6281200000001"))
    await wait_until(lambda: len(rec.statuses()) == 8)
    assert [s["status"] for s in rec.statuses()[6:]] == ["sent", "read"]


async def test_webhook_retried_on_non_2xx(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    rec = receiver[0]
    fake.configure(webhook_read_rate=0.0, webhook_skip_delivered_rate=0.0)
    rec.fail_next = 2
    await post_send(http, fake, good_send())
    await fake.drain_webhooks()
    assert [s["status"] for s in rec.statuses()] == ["sent", "delivered"]
    assert fake.counts["webhook_failed_attempts"] == 2
    assert max(entry["attempts"] for entry in fake.state.webhook_log) >= 2


async def test_webhook_before_the_send_answer(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    fake.configure(webhook_before_response=True, webhook_read_rate=0.0)
    _, answer = await post_send(http, fake, good_send())
    [sent] = receiver[0].statuses()
    assert sent["status"] == "sent" and sent["id"] == answer["messages"][0]["id"]


async def test_webhooks_batched_when_due_together(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    released = asyncio.Event()
    bodies: list[dict[str, Any]] = []

    async def slow_sink(body: bytes, signature: str) -> None:
        assert signature == sign(body, SECRET)
        await released.wait()
        bodies.append(json.loads(body))

    fake.emitter.sink = slow_sink
    fake.configure(webhook_batch_max=50, webhook_read_rate=0.0)
    for i in range(10):
        await post_send(http, fake, good_send(f"+62812000000{i:02d}"))
    released.set()
    await fake.drain_webhooks()
    counts = [len(b["entry"][0]["changes"][0]["value"]["statuses"]) for b in bodies]
    assert sum(counts) == 20 and len(bodies) < 20


# --- templates ---
async def test_template_review_and_status_webhook(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    fake.configure(review_delay_s=0.1)
    url = f"{fake.url}/{fake.config.business_account_id}/message_templates"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for name in ("fresh_promo", "reject_this"):
        body = {
            "name": name,
            "language": "en",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "x"}],
        }
        async with http.post(url, json=body, headers=headers) as resp:
            created = await resp.json()
        assert resp.status == 200 and created["status"] == "PENDING" and created["category"] == "MARKETING"
    await wait_until(lambda: len(receiver[0].template_events()) == 2)
    events = {e["message_template_name"]: e for e in receiver[0].template_events()}
    assert events["fresh_promo"]["event"] == "APPROVED"
    assert events["reject_this"]["event"] == "REJECTED" and "rejection_info" in events["reject_this"]
    assert isinstance(events["fresh_promo"]["message_template_id"], int)  # a number here, a string in the API
    _, listed = await get_json(http, url, fields="name,status")
    status_of = {t["name"]: t["status"] for t in listed["data"]}
    assert status_of["fresh_promo"] == "APPROVED" and status_of["reject_this"] == "REJECTED"
    assert set(listed["data"][0]) == {"id", "name", "status"}


async def test_template_create_errors(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    url = f"{fake.url}/{fake.config.business_account_id}/message_templates"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bad = [
        {
            "name": "Bad Name",
            "language": "en",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "x"}],
        },
        {
            "name": "ok_name",
            "language": "en",
            "category": "PROMO",
            "components": [{"type": "BODY", "text": "x"}],
        },
        {"name": "ok_name", "language": "en", "category": "UTILITY", "components": []},
        {
            "name": "order_update",
            "language": "en_US",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "x"}],
        },
    ]
    for body in bad:
        async with http.post(url, json=body, headers=headers) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == 100


async def test_template_paging(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    for i in range(7):
        fake.add_template(
            {"name": f"extra_{i}", "language": "en", "components": [{"type": "BODY", "text": "x"}]}
        )
    url = f"{fake.url}/{fake.config.business_account_id}/message_templates"
    names: list[str] = []
    page = await get_json(http, url, limit="4")
    pages = [page[1]]
    while "next" in pages[-1]["paging"]:
        assert f"access_token={TOKEN}" in pages[-1]["paging"]["next"]  # Graph's links carry the token
        pages.append((await get_json(http, url, limit="4", after=pages[-1]["paging"]["cursors"]["after"]))[1])
    for p in pages:
        names += [t["name"] for t in p["data"]]
    assert len(pages) == 3 and len(names) == 10 == len(set(names))
    assert "previous" not in pages[0]["paging"] and "previous" in pages[1]["paging"]
    back = await get_json(http, url, limit="4", before=pages[1]["paging"]["cursors"]["before"])
    assert [t["name"] for t in back[1]["data"]] == [t["name"] for t in pages[0]["data"]]
    _, approved = await get_json(http, url, status="APPROVED,PAUSED", category="MARKETING")
    assert [t["name"] for t in approved["data"]] == ["spring_sale"]
    assert fake.counts["list_requests"] == 5


async def test_single_template_phone_number_and_delete(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    tpl = next(t for t in fake.templates() if t.name == "receipt")
    status, one = await get_json(http, f"{fake.url}/{tpl.id}")
    assert status == 200 and one["name"] == "receipt"
    _, phone = await get_json(http, f"{fake.url}/{fake.config.phone_number_id}")
    assert set(phone) == {
        "id",
        "verified_name",
        "code_verification_status",
        "display_phone_number",
        "quality_rating",
    }
    _, phone = await get_json(
        http,
        f"{fake.url}/{fake.config.phone_number_id}",
        fields="whatsapp_business_manager_messaging_limit,throughput",
    )
    assert (
        phone["whatsapp_business_manager_messaging_limit"] == "TIER_2K"
        and phone["throughput"]["level"] == "STANDARD"
    )
    url = f"{fake.url}/{fake.config.business_account_id}/message_templates"
    async with http.delete(
        url, params={"name": "receipt"}, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 200 and await resp.json() == {"success": True}
    assert (await get_json(http, f"{fake.url}/{tpl.id}"))[0] == 400


async def test_template_store_shared_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    async with FakeGraph(templates_path=path) as one, FakeGraph(templates_path=path) as two:
        one.add_template(
            {"name": "shared_one", "language": "en", "components": [{"type": "BODY", "text": "x"}]}
        )
        assert [t.name for t in two.templates()] == ["shared_one"]
        two.set_template_status("shared_one", "PAUSED")
        assert one.templates()[0].status == "PAUSED"


# --- control endpoints ---
async def test_control_endpoints(
    fake: FakeGraph, http: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    base = f"{fake.base_url}/_fake"

    async def call(method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        async with http.request(method, base + path, json=body, params=params) as resp:
            return resp.status, await resp.json()

    assert (await call("GET", "/health"))[1] == {"ok": True}
    status, cfg = await call("POST", "/config", {"latency_ms": 1, "webhook_read_rate": 0.0})
    assert status == 200 and cfg["changed"] == ["latency_ms", "webhook_read_rate"]
    assert cfg["config"]["access_token"] == "********" and cfg["config"]["app_secret"] == "********"
    assert (await call("POST", "/config", {"no_such_knob": 1}))[0] == 400
    status, faults = await call(
        "POST", "/faults", {"mode": "error", "code": 131050, "to": "+62 812 0000 0001"}
    )
    assert status == 200 and faults["data"][0]["to"] == "6281200000001"
    assert (await call("POST", "/faults", {"mode": "explode"}))[0] == 400
    status, seeded = await call(
        "POST",
        "/templates",
        {
            "templates": [
                {"name": "seeded", "language": "id", "components": [{"type": "BODY", "text": "Halo"}]}
            ]
        },
    )
    assert "seeded" in [t["name"] for t in seeded["data"]]
    await post_send(http, fake, good_send("+6281200000001"))
    await post_send(http, fake, good_send("+6281200000002"))
    _, msgs = await call("GET", "/messages", to="6281200000001")
    assert msgs["count"] == 1 and msgs["data"][0]["code"] == 131050 and msgs["data"][0]["outcome"] == "error"
    _, accepted = await call("GET", "/messages", outcome="accepted")
    assert [m["to"] for m in accepted["data"]] == ["6281200000002"]
    assert accepted["data"][0]["callback_data"] == "blast=42;rcpt=9001;try=1"
    _, state = await call("GET", "/state")
    assert state["counts"]["messages_requests"] == 2 and state["counts"]["accepted"] == 1
    assert state["outcomes"] == {"error": 1, "accepted": 1}
    status, moved = await call("POST", "/templates/status", {"name": "seeded", "status": "paused"})
    assert status == 200 and moved["data"][0]["status"] == "PAUSED"
    await wait_until(lambda: any(e["event"] == "PAUSED" for e in receiver[0].template_events()))
    await fake.drain_webhooks()
    _, hooks = await call("GET", "/webhooks")
    assert hooks["count"] >= 3 and all(h["delivered"] for h in hooks["data"])
    assert (await call("DELETE", "/faults"))[1] == {"data": []}
    assert (await call("POST", "/reset"))[0] == 200
    _, state = await call("GET", "/state")
    assert state["received"] == 0 and state["counts"] == {}


async def test_verify_handshake_against_a_receiver(fake: FakeGraph, http: aiohttp.ClientSession) -> None:
    async def verify(request: web.Request) -> web.Response:
        query = request.query
        if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == "vt":
            return web.Response(text=query["hub.challenge"])
        return web.Response(status=403)

    app = web.Application()
    app.router.add_get("/webhook", verify)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        target = str(server.make_url("/webhook"))
        for token, ok in (("vt", True), ("wrong", False)):
            async with http.get(
                f"{fake.base_url}/_fake/verify", params={"url": target, "verify_token": token}
            ) as r:
                assert (await r.json())["ok"] is ok
    finally:
        await server.close()


async def test_command_line(receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps(TEMPLATES))
    args = [
        sys.executable,
        "-m",
        "shared.fake_graph",
        "--port",
        str(port),
        "--token",
        "T",
        "--app-secret",
        SECRET,
    ]
    args += ["--webhook-url", receiver[1], "--templates", str(templates), "--quiet"]
    proc = subprocess.Popen(
        args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 15
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/_fake/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{port}/v24.0/{FakeConfig.phone_number_id}/messages"
            async with http.post(url, json=good_send(), headers={"Authorization": "Bearer T"}) as resp:
                assert resp.status == 200
        await wait_until(lambda: len(receiver[0].statuses()) == 3, timeout_s=10)
        assert receiver[0].bad_signatures == 0
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert b"nothing reaches WhatsApp" in err
