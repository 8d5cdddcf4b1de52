"""Tests of the cloud client against the fake Graph API on a loopback port: every class of outcome."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from shared.fake_graph import FakeConfig, FakeGraph
from shared.whatsapp import (
    CloudClient,
    ErrorClass,
    GraphApiError,
    SendAccepted,
    SendFailed,
    SendResult,
    WhatsAppProvider,
)

TOKEN = "EAAG-test-secret-token-9f8e7d6c5b4a"
BODY_2 = [
    {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "A-1001"}]}
]
URL_BUTTON = {
    "type": "button",
    "sub_type": "url",
    "index": "0",
    "parameters": [{"type": "text", "text": "A-1001"}],
}

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
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
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Thanks {{1}}, here is your receipt."},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}]},
        ],
    },
    {
        "name": "paused_one",
        "language": "en",
        "status": "PAUSED",
        "components": [{"type": "BODY", "text": "x"}],
    },
    {
        "name": "disabled_one",
        "language": "en",
        "status": "DISABLED",
        "components": [{"type": "BODY", "text": "x"}],
    },
    {
        "name": "pending_one",
        "language": "en",
        "status": "PENDING",
        "components": [{"type": "BODY", "text": "x"}],
    },
]


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    # Limits off unless a test turns them on, so tests do not depend on timing.
    config = FakeConfig(access_token=TOKEN, mps=None, pair_rate_per_s=None)
    async with FakeGraph(config, templates=TEMPLATES, seed=7) as server:
        yield server


def make_client(fake: FakeGraph, **overrides: Any) -> CloudClient:
    options: dict[str, Any] = {
        "api_url": fake.url,
        "access_token": TOKEN,
        "phone_number_id": fake.config.phone_number_id,
        "business_account_id": fake.config.business_account_id,
        "timeout_s": 2.0,
    }
    options.update(overrides)
    return CloudClient(**options)


@pytest.fixture(params=["lean", "aiohttp"])
def send_client(request: pytest.FixtureRequest) -> str:
    """Sends go through either HTTP client (BLAST_SEND_CLIENT): every behaviour holds for both."""
    return str(request.param)


@pytest.fixture
async def client(fake: FakeGraph, send_client: str) -> AsyncIterator[CloudClient]:
    async with make_client(fake, send_client=send_client) as c:
        yield c


async def send_order(client: CloudClient, to: str = "+6281234567890", **extra: Any) -> SendResult:
    return await client.send_template(
        to=to, template="order_update", language="en_US", components=[*BODY_2, URL_BUTTON], **extra
    )


def failed(result: SendResult) -> SendFailed:
    assert isinstance(result, SendFailed), result
    return result


# --- accepted ---
async def test_accepted_send_carries_metas_shape(fake: FakeGraph, client: CloudClient) -> None:
    result = await send_order(client, callback_data="blast=42;rcpt=9001;try=1")
    assert isinstance(result, SendAccepted)
    assert result.ok and result.wamid.startswith("wamid.")
    assert result.wa_id == "6281234567890" and result.message_status == "accepted"
    [msg] = fake.received
    assert msg.endpoint == "messages"
    assert msg.body["to"] == "6281234567890"  # digits only, no +
    assert msg.body["messaging_product"] == "whatsapp" and msg.body["type"] == "template"
    assert msg.body["template"]["language"] == {"policy": "deterministic", "code": "en_US"}
    assert msg.body["template"]["components"] == [*BODY_2, URL_BUTTON]
    assert msg.body["biz_opaque_callback_data"] == "blast=42;rcpt=9001;try=1"


async def test_named_parameters_and_header_media(fake: FakeGraph, client: CloudClient) -> None:
    named = [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "code", "text": "SPRING20"},
                {"type": "text", "parameter_name": "first_name", "text": "Ada"},
            ],
        }
    ]
    assert isinstance(
        await client.send_template(
            to="6281234567891", template="spring_sale", language="en_US", components=named
        ),
        SendAccepted,
    )
    header = {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.test/r.jpg"}}]}
    body = {"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}
    quick = {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "0",
        "parameters": [{"type": "payload", "payload": "S"}],
    }
    result = await client.send_template(
        to="6281234567892", template="receipt", language="en", components=[header, body, quick]
    )
    assert isinstance(result, SendAccepted)


async def test_wa_id_can_differ_from_the_input(client: CloudClient) -> None:
    result = await send_order(client, to="+5511987654321")  # Brazil: Meta drops the mobile 9
    assert isinstance(result, SendAccepted) and result.wa_id == "551187654321"


async def test_any_graph_version_is_accepted(fake: FakeGraph) -> None:
    async with make_client(fake, api_url=f"{fake.base_url}/v23.0") as c23:
        assert isinstance(await send_order(c23), SendAccepted)


async def test_callback_data_is_limited_to_512(client: CloudClient) -> None:
    with pytest.raises(ValueError, match="512"):
        await send_order(client, callback_data="x" * 513)


# --- retry later ---
@pytest.mark.parametrize("http_status", [400, 429])
async def test_throughput_limit_is_retry_later_and_throttled(fake: FakeGraph, http_status: int) -> None:
    fake.configure(mps=5.0, mps_burst=5.0, throttle_http_status=http_status)
    async with make_client(fake) as c:
        results = await asyncio.gather(*(send_order(c, to=f"62812000000{i:02d}") for i in range(15)))
    throttled = [r.error for r in results if isinstance(r, SendFailed)]
    assert 5 <= sum(isinstance(r, SendAccepted) for r in results) < 15
    assert throttled and all(e.code == 130429 for e in throttled)
    assert all(e.error_class is ErrorClass.RETRY_LATER and e.throttled for e in throttled)
    assert all(e.http_status == http_status for e in throttled)


async def test_pair_rate_limit_holds_back_one_recipient(fake: FakeGraph, client: CloudClient) -> None:
    fake.configure(pair_rate_per_s=1 / 6, pair_burst=2)
    assert isinstance(await send_order(client, to="6281200000001"), SendAccepted)
    assert isinstance(await send_order(client, to="6281200000001"), SendAccepted)
    error = failed(await send_order(client, to="6281200000001")).error
    assert error.code == 131056 and error.error_class is ErrorClass.RETRY_LATER
    assert error.pair_rate and not error.throttled
    assert isinstance(await send_order(client, to="6281200000002"), SendAccepted)  # others go on


@pytest.mark.parametrize(("code", "http_status"), [(131000, 500), (131016, 503), (133004, 503), (2, 503)])
async def test_transient_server_errors_retry_later(
    fake: FakeGraph, client: CloudClient, code: int, http_status: int
) -> None:
    fake.add_fault(mode="error", code=code, http_status=http_status, times=1)
    error = failed(await send_order(client)).error
    assert (error.code, error.http_status, error.error_class) == (code, http_status, ErrorClass.RETRY_LATER)
    assert isinstance(await send_order(client), SendAccepted)  # the fault fired once


async def test_connection_refused_is_retry_later(send_client: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with CloudClient(
        api_url=f"http://127.0.0.1:{port}/v24.0",
        access_token=TOKEN,
        phone_number_id="1",
        timeout_s=1.0,
        send_client=send_client,
    ) as c:
        error = failed(await send_order(c)).error
    assert error.error_class is ErrorClass.RETRY_LATER
    assert "nothing was sent" in error.meaning
    assert ("ClientConnectorError" if send_client == "aiohttp" else "ConnectionRefusedError") in error.meaning


async def test_waiting_for_a_pooled_connection_is_retry_later(fake: FakeGraph) -> None:
    """A request that never got a connection never left: retry-later, and the fake never saw it."""
    fake.add_fault(mode="hang", to="6281200000009", delay_s=30)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        slow = make_client(fake, session=session, timeout_s=10.0, send_client="aiohttp")
        quick = make_client(fake, session=session, timeout_s=0.3, send_client="aiohttp")
        hanging = asyncio.create_task(send_order(slow, to="6281200000009"))
        await wait_until(lambda: len(fake.received) == 1)
        error = failed(await send_order(quick, to="6281200000010")).error
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    assert error.error_class is ErrorClass.RETRY_LATER
    assert "ConnectionTimeoutError" in error.meaning
    assert [m.to for m in fake.received] == ["6281200000009"]


# --- recipient permanent ---
@pytest.mark.parametrize("code", [131026, 131049, 131050, 131021, 130497])
async def test_per_number_permanent_failures(fake: FakeGraph, client: CloudClient, code: int) -> None:
    fake.add_fault(mode="error", code=code, to="+6281299999999")
    error = failed(await send_order(client, to="6281299999999")).error
    assert error.code == code and error.error_class is ErrorClass.RECIPIENT_PERMANENT
    assert error.opted_out is (code == 131050)
    assert isinstance(await send_order(client, to="6281299999998"), SendAccepted)


async def test_invalid_number_is_recipient_permanent(client: CloudClient) -> None:
    error = failed(await send_order(client, to="12ab")).error
    assert error.code == 131009 and error.error_class is ErrorClass.RECIPIENT_PERMANENT
    assert error.may_be_systemic


async def test_named_template_needs_parameter_names(client: CloudClient) -> None:
    unnamed = [
        {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "S"}]}
    ]
    result = await client.send_template(
        to="6281234567891", template="spring_sale", language="en_US", components=unnamed
    )
    error = failed(result).error
    assert error.code == 100 and "parameter_name" in (error.details or "")


async def test_unknown_4xx_code_keeps_the_raw_body(fake: FakeGraph, client: CloudClient) -> None:
    fake.add_fault(mode="error", code=987654, http_status=400)
    error = failed(await send_order(client)).error
    assert error.error_class is ErrorClass.RECIPIENT_PERMANENT
    assert error.raw is not None and '"code":987654' in error.raw.replace(" ", "")


# --- blast fatal ---
async def test_rejected_token_is_blast_fatal(fake: FakeGraph) -> None:
    async with make_client(fake, access_token="EAAG-wrong-token") as c:
        error = failed(await send_order(c)).error
    assert (error.code, error.http_status, error.error_class) == (190, 401, ErrorClass.BLAST_FATAL)
    assert "renew WHATSAPP_ACCESS_TOKEN" in error.meaning


@pytest.mark.parametrize(
    ("template", "language", "code"),
    [
        ("order_update", "en", 132001),  # en and en_US are different templates
        ("no_such_template", "en_US", 132001),
        ("pending_one", "en", 132001),
        ("paused_one", "en", 132015),
        ("disabled_one", "en", 132016),
    ],
)
async def test_template_problems_are_blast_fatal(
    client: CloudClient, template: str, language: str, code: int
) -> None:
    error = failed(await client.send_template(to="6281234567890", template=template, language=language)).error
    assert error.code == code and error.error_class is ErrorClass.BLAST_FATAL


async def test_parameter_count_mismatch_is_blast_fatal(client: CloudClient) -> None:
    error = failed(
        await client.send_template(to="6281234567890", template="order_update", language="en_US")
    ).error
    assert error.code == 132000 and error.error_class is ErrorClass.BLAST_FATAL


@pytest.mark.parametrize(("code", "http_status"), [(131048, 429), (131042, 402), (368, 403), (131031, 403)])
async def test_account_problems_are_blast_fatal(
    fake: FakeGraph, client: CloudClient, code: int, http_status: int
) -> None:
    fake.add_fault(mode="error", code=code, http_status=http_status)
    error = failed(await send_order(client)).error
    assert error.code == code and error.error_class is ErrorClass.BLAST_FATAL


# --- unknown outcome ---
async def test_timeout_after_sending_is_unknown_and_never_retried(fake: FakeGraph) -> None:
    statuses: list[bytes] = []

    async def sink(body: bytes, signature: str) -> None:
        statuses.append(body)

    fake.emitter.sink = sink
    fake.add_fault(mode="hang", to="6281234567890", delay_s=30)
    async with make_client(fake, timeout_s=0.3) as c:
        started = time.monotonic()
        error = failed(await send_order(c, callback_data="blast=1;rcpt=5;try=1")).error
        elapsed = time.monotonic() - started
    assert error.error_class is ErrorClass.UNKNOWN_OUTCOME
    assert "may have gone out" in error.meaning and "never re-sent" in error.meaning
    assert 0.25 < elapsed < 2.0
    # Exactly one request reached the fake, and Meta did send it: only the webhook can tell.
    [msg] = fake.received
    assert msg.outcome == "hang" and msg.wamid is not None
    await wait_until(lambda: any(b"blast=1;rcpt=5;try=1" in b for b in statuses))


async def test_dropped_connection_after_sending_is_unknown(
    fake: FakeGraph, client: CloudClient, send_client: str
) -> None:
    fake.add_fault(mode="drop", times=1)
    error = failed(await send_order(client)).error
    assert error.error_class is ErrorClass.UNKNOWN_OUTCOME
    assert ("ServerDisconnectedError" if send_client == "aiohttp" else "connection lost") in error.meaning
    assert len(fake.received) == 1
    assert isinstance(await send_order(client), SendAccepted)  # the pool recovers


async def test_gateway_error_without_graph_body_is_unknown(fake: FakeGraph, client: CloudClient) -> None:
    fake.add_fault(mode="raw", http_status=502, times=1)
    error = failed(await send_order(client)).error
    assert error.error_class is ErrorClass.UNKNOWN_OUTCOME and error.http_status == 502


# --- marketing endpoint ---
async def test_marketing_endpoint_only_when_configured(fake: FakeGraph) -> None:
    named = [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Ada"},
                {"type": "text", "parameter_name": "code", "text": "S20"},
            ],
        }
    ]
    async with make_client(fake, use_marketing_endpoint=True) as on, make_client(fake) as off:
        for c in (on, off):
            result = await c.send_template(
                to="6281234567890",
                template="spring_sale",
                language="en_US",
                components=named,
                category="MARKETING",
            )
            assert isinstance(result, SendAccepted)
        assert isinstance(await send_order(on, category="UTILITY"), SendAccepted)
    assert [m.endpoint for m in fake.received] == ["marketing_messages", "messages", "messages"]


# --- templates and the number ---
async def test_list_templates_follows_every_page(fake: FakeGraph, client: CloudClient) -> None:
    for i in range(23):
        fake.add_template(
            {"name": f"bulk_{i:02d}", "language": "en", "components": [{"type": "BODY", "text": "x"}]}
        )
    total = len(fake.templates())
    listed = await client.list_templates(limit=5)
    assert sorted(t.name for t in listed) == sorted(t.name for t in fake.templates())
    assert len({t.id for t in listed}) == total == 29
    assert fake.counts["list_requests"] == 6  # ceil(29 / 5)
    spring = next(t for t in listed if t.name == "spring_sale")
    assert (spring.parameter_format, spring.category, spring.status) == ("NAMED", "MARKETING", "APPROVED")
    assert spring.components[0]["type"] == "BODY" and spring.quality_score == "UNKNOWN"


async def test_list_templates_with_short_pages(fake: FakeGraph, client: CloudClient) -> None:
    fake.configure(max_page_size=4)  # Graph answers fewer than asked: a short page is not the end
    listed = await client.list_templates(limit=100)
    assert len(listed) == len(TEMPLATES)
    assert fake.counts["list_requests"] == 2


async def test_list_templates_failure_raises_graph_api_error(fake: FakeGraph, client: CloudClient) -> None:
    fake.add_fault(mode="error", code=80007, endpoint="templates")
    with pytest.raises(GraphApiError) as caught:
        await client.list_templates()
    assert caught.value.error.error_class is ErrorClass.RETRY_LATER and caught.value.error.throttled
    assert caught.value.error.retry_after_s == 60.0  # estimated_time_to_regain_access: 1 minute
    assert str(caught.value).startswith("listing templates (page 1) failed:")


async def test_templates_need_the_business_account_id(fake: FakeGraph) -> None:
    from shared.errors import ConfigError

    async with make_client(fake, business_account_id=None) as c:
        with pytest.raises(ConfigError, match="WHATSAPP_BUSINESS_ACCOUNT_ID"):
            await c.list_templates()


async def test_submit_template_then_review(fake: FakeGraph, client: CloudClient) -> None:
    components = [{"type": "BODY", "text": "Hi {{1}}", "example": {"body_text": [["Ada"]]}}]
    submitted = await client.submit_template(
        name="welcome_v2",
        language="en_US",
        category="marketing",
        components=components,
        parameter_format="positional",
    )
    assert submitted.status == "PENDING" and submitted.category == "MARKETING" and submitted.id.isdigit()
    rejected = await client.submit_template(
        name="reject_me", language="en", category="UTILITY", components=components
    )
    fake.finish_reviews()
    by_name = {t.name: t for t in await client.list_templates()}
    assert by_name["welcome_v2"].status == "APPROVED" and by_name["welcome_v2"].id == submitted.id
    assert by_name["reject_me"].status == "REJECTED" and by_name["reject_me"].id == rejected.id
    with pytest.raises(GraphApiError, match="already exists"):
        await client.submit_template(
            name="welcome_v2", language="en_US", category="MARKETING", components=components
        )


async def test_phone_number_info(fake: FakeGraph, client: CloudClient) -> None:
    fake.configure(messaging_limit="TIER_10K", quality_rating="YELLOW", throughput_level="HIGH")
    info = await client.phone_number_info()
    assert info.id == fake.config.phone_number_id
    assert (info.messaging_limit_tier, info.daily_unique_limit) == ("TIER_10K", 10_000)
    assert (info.quality_rating, info.throughput_level) == ("YELLOW", "HIGH")
    fake.configure(messaging_limit="TIER_UNLIMITED")
    assert (await client.phone_number_info()).daily_unique_limit is None


async def test_client_is_a_provider(client: CloudClient) -> None:
    assert isinstance(client, WhatsAppProvider)
    assert client.name == "cloud" and not client.is_sandbox
    assert "cloud" in client.describe()


# --- secrets ---
async def test_token_never_in_logs_exceptions_or_reprs(
    fake: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[object] = []

    async def collect(call: Awaitable[object]) -> None:
        try:
            seen.append(await call)
        except Exception as exc:  # every exception the client raises is checked below
            seen.append(exc)

    for i in range(12):
        fake.add_template(
            {"name": f"page_{i}", "language": "en", "components": [{"type": "BODY", "text": "x"}]}
        )
    fake.add_fault(mode="error", code=131026, to="6281200000001")
    fake.add_fault(mode="raw", http_status=502, to="6281200000002")
    fake.add_fault(mode="drop", to="6281200000003")
    fake.add_fault(mode="hang", to="6281200000004", delay_s=30)
    fake.add_fault(mode="error", code=987654, http_status=400, to="6281200000005")
    async with make_client(fake, timeout_s=0.3) as c:
        seen.append(c)
        for n in range(6):
            await collect(send_order(c, to=f"628120000000{n}"))
        await collect(c.list_templates(limit=3))  # Graph's `next` links carry the token
        await collect(c.phone_number_info())
        fake.add_fault(mode="error", code=190, endpoint="any")
        await collect(c.list_templates())
        await collect(c.submit_template(name="x", language="en", category="UTILITY", components=[]))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_client(fake, api_url=f"http://127.0.0.1:{port}/v24.0") as refused:
        seen.append(refused)
        await collect(send_order(refused))
        await collect(refused.list_templates())
    kinds = {type(x).__name__ for x in seen}
    assert {"CloudClient", "SendAccepted", "SendFailed", "list", "PhoneNumberInfo", "GraphApiError"} <= kinds
    for item in seen:
        assert TOKEN not in repr(item) and TOKEN not in str(item)
        if isinstance(item, BaseException):
            assert TOKEN not in "".join(traceback.format_exception(item))
    assert "6281200000001" not in caplog.text  # phone numbers are masked too
    assert caplog.records and TOKEN not in caplog.text
