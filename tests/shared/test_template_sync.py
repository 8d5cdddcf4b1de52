"""Template sync, status webhooks and submission against the project's fake Graph API (real DB and Redis)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.template_sync_loop import run_template_sync_loop
from shared import metrics
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeTemplate
from shared.models import AuditLog, Blast, Template
from shared.services import live
from shared.services.template_drafts import build_template, submit_template
from shared.services.template_sync import (
    apply_template_event,
    claim_slot,
    sync_templates,
    sync_templates_in_slot,
)
from shared.status import BlastStatus, TemplateStatus
from shared.whatsapp.base import WhatsAppProvider
from shared.whatsapp.cloud import CloudClient

B, T = BlastStatus, TemplateStatus

ORDER_UPDATE: dict[str, Any] = {
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order news"},
        {
            "type": "BODY",
            "text": "Hi {{1}}, order {{2}} ships today.",
            "example": {"body_text": [["Ada", "42"]]},
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
    ],
}
WELCOME_NAMED: dict[str, Any] = {
    "name": "welcome",
    "language": "id",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "BODY",
            "text": "Halo {{first_name}}, kode {{code}} berlaku.",
            "example": {
                "body_text_named_params": [
                    {"param_name": "first_name", "example": "Ada"},
                    {"param_name": "code", "example": "X1"},
                ]
            },
        }
    ],
}


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0, what: str = "condition"
) -> None:
    """Poll `check` until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def cloud_settings(make_settings: object, fake: FakeGraph, **overrides: object) -> Settings:
    assert callable(make_settings)
    result = make_settings(
        WHATSAPP_PROVIDER="cloud",
        WHATSAPP_API_URL=fake.url,
        WHATSAPP_ACCESS_TOKEN=fake.config.access_token,
        WHATSAPP_BUSINESS_ACCOUNT_ID=fake.config.business_account_id,
        WHATSAPP_PHONE_NUMBER_ID=fake.config.phone_number_id,
        WHATSAPP_TIMEOUT_S=5,
        **overrides,
    )
    assert isinstance(result, Settings)
    return result


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(templates=[ORDER_UPDATE, WELCOME_NAMED], seed=1) as server:
        yield server


@pytest.fixture
async def cloud(
    make_settings: object, fake: FakeGraph, db: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Settings, WhatsAppProvider]]:
    """Settings pointing at the fake (1 s sync interval) and a started cloud provider."""
    settings = cloud_settings(make_settings, fake, TEMPLATE_SYNC_INTERVAL=1)
    provider = CloudClient.from_settings(settings)
    await provider.start()
    try:
        yield settings, provider
    finally:
        await provider.close()


async def status_of(name: str, language: str) -> TemplateStatus:
    row = await Template.get(name=name, language=language)
    return TemplateStatus(row.status)


async def make_blast(template: Template, status: BlastStatus, name: str = "promo") -> Blast:
    started = utcnow() if status == B.PROCESSING else None
    return await Blast.create(
        name=name, template=template, status=status, send_at=utcnow() + timedelta(hours=1), started_at=started
    )


# ----------------------------------------------------------------------------------------------------------
# sync
# ----------------------------------------------------------------------------------------------------------


async def test_sync_creates_templates_made_in_meta_tools(cloud: tuple[Settings, WhatsAppProvider]) -> None:
    settings, provider = cloud
    report = await sync_templates(settings, provider)
    assert report.failed is None
    assert sorted((c.name, c.language, c.old, c.new) for c in report.created) == [
        ("order_update", "en_US", None, T.APPROVED),
        ("welcome", "id", None, T.APPROVED),
    ]
    order = await Template.get(name="order_update", language="en_US")
    assert order.category == "UTILITY"
    assert order.meta_id
    assert order.parameter_format == "POSITIONAL"
    assert order.parameter_names == ["1", "2"] and order.parameter_count == 2
    assert [c["type"] for c in order.components] == ["HEADER", "BODY", "FOOTER"]
    assert order.last_synced_at is not None
    welcome = await Template.get(name="welcome", language="id")
    assert (welcome.category, welcome.parameter_format) == ("MARKETING", "NAMED")
    assert welcome.parameter_names == ["first_name", "code"] and welcome.parameter_count == 2

    again = await sync_templates(settings, provider)
    assert (again.created, again.changed, again.unchanged) == ([], [], 2)


async def test_sync_reads_every_page(cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph) -> None:
    settings, provider = cloud
    for i in range(40):
        fake.add_template({**ORDER_UPDATE, "name": f"bulk_{i:02d}"})
    fake.configure(max_page_size=7)  # 42 templates -> 6 pages, whatever limit the client asks for
    before = fake.counts.get("list_requests", 0)
    report = await sync_templates(settings, provider)
    assert report.failed is None
    assert len(report.created) == 42
    assert await Template.all().count() == 42
    assert fake.counts["list_requests"] - before == 6


async def test_periodic_sync_picks_up_review_outcomes(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    """PENDING templates become APPROVED / REJECTED at the fake after ~1 s; the 1 s loop notices."""
    settings, provider = cloud
    soon = time.time() + 1.5
    good = FakeTemplate.from_json({**ORDER_UPDATE, "name": "shipping_notice", "status": "PENDING"})
    bad = FakeTemplate.from_json({**ORDER_UPDATE, "name": "promo_blast", "status": "PENDING"})
    good.review_at, good.review_to = soon, "APPROVED"
    bad.review_at, bad.review_to = soon, "REJECTED"
    fake.add_template(good)
    fake.add_template(bad)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_template_sync_loop(settings, provider, stop, daemon_id="test-daemon"))
    try:

        async def submitted() -> bool:
            return (
                await Template.filter(name__in=["shipping_notice", "promo_blast"], status=T.SUBMITTED).count()
                == 2
            )

        await wait_for(submitted, what="PENDING templates stored as SUBMITTED")

        async def reviewed() -> bool:
            return (
                await Template.filter(name="shipping_notice", status=T.APPROVED).exists()
                and await Template.filter(name="promo_blast", status=T.REJECTED).exists()
            )

        await wait_for(reviewed, timeout_s=10, what="review outcomes synced")
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    rejected = await Template.get(name="promo_blast")
    assert rejected.rejection_reason == "INVALID_FORMAT"
    jobs = await live.recent_jobs(settings)
    assert jobs and all(j.kind == "template_sync" and j.outcome == "ok" for j in jobs)
    assert any(
        "promo_blast (en_US) SUBMITTED -> REJECTED" in c for j in jobs for c in j.detail.get("changed", [])
    )


async def test_auth_failure_changes_nothing_and_is_reported(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    settings, provider = cloud
    assert (await sync_templates(settings, provider)).failed is None
    fake.set_template_status("order_update", "PAUSED")
    fake.configure(access_token="a-rotated-token")  # ours is now rejected with code 190

    report = await sync_templates(settings, provider)
    assert report.failed is not None
    assert "190" in report.failed and "token" in report.failed
    assert await status_of("order_update", "en_US") == T.APPROVED
    assert fake.config.access_token not in caplog.text and "a-rotated-token" not in caplog.text

    failed_before = (
        metrics.REGISTRY.get_sample_value("blast_template_sync_total", {"outcome": "failed"}) or 0.0
    )
    # The daemon's loop records it as a failed job for the console and keeps running.
    stop = asyncio.Event()
    loop = asyncio.create_task(run_template_sync_loop(settings, provider, stop, daemon_id="test-daemon"))
    try:

        async def failed_job() -> bool:
            return any(j.outcome == "failed" for j in await live.recent_jobs(settings))

        await wait_for(failed_job, what="a failed template_sync job")
        assert not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    job = next(j for j in await live.recent_jobs(settings) if j.outcome == "failed")
    failed_after = (
        metrics.REGISTRY.get_sample_value("blast_template_sync_total", {"outcome": "failed"}) or 0.0
    )
    assert failed_after > failed_before
    assert job.kind == "template_sync" and job.daemon == "test-daemon"
    assert job.error is not None and "190" in job.error
    assert await status_of("order_update", "en_US") == T.APPROVED
    assert "template sync failed" in caplog.text


async def test_paused_template_pauses_scheduled_and_running_blasts(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    settings, provider = cloud
    await sync_templates(settings, provider)
    order = await Template.get(name="order_update", language="en_US")
    other = await Template.get(name="welcome", language="id")
    scheduled = await make_blast(order, B.SCHEDULED, "scheduled")
    running = await make_blast(order, B.PROCESSING, "running")
    draft = await make_blast(order, B.DRAFT, "draft")
    unrelated = await make_blast(other, B.SCHEDULED, "unrelated")

    fake.set_template_status("order_update", "PAUSED")
    report = await sync_templates(settings, provider)
    assert [(c.name, c.old, c.new) for c in report.changed] == [("order_update", T.APPROVED, T.PAUSED)]
    assert sorted(p.blast_id for p in report.paused_blasts) == sorted([scheduled.id, running.id])
    for blast in (scheduled, running):
        fresh = await Blast.get(id=blast.id)
        assert fresh.status == B.PAUSED
        assert fresh.last_error is not None
        assert fresh.last_error.startswith(
            "template order_update (en_US) became PAUSED at Meta: quality rating"
        )
        assert "resume" in fresh.last_error and "APPROVED" in fresh.last_error
    assert (await Blast.get(id=draft.id)).status == B.DRAFT
    assert (await Blast.get(id=unrelated.id)).status == B.SCHEDULED
    assert await AuditLog.filter(entity="blast", action="pause").count() == 2

    # APPROVED again: nothing else pauses; the operator resumes.
    fake.set_template_status("order_update", "APPROVED")
    report = await sync_templates(settings, provider)
    assert [(c.old, c.new) for c in report.changed] == [(T.PAUSED, T.APPROVED)]
    assert report.paused_blasts == []


async def test_disabled_template_reason_says_it_will_not_come_back(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    settings, provider = cloud
    await sync_templates(settings, provider)
    blast = await make_blast(await Template.get(name="welcome"), B.PROCESSING)
    fake.set_template_status("welcome", "DISABLED")
    await sync_templates(settings, provider)
    fresh = await Blast.get(id=blast.id)
    assert fresh.status == B.PAUSED
    assert fresh.last_error is not None and "became DISABLED" in fresh.last_error
    assert "another template" in fresh.last_error


async def test_deleted_at_meta_and_missing_from_the_list(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    settings, provider = cloud
    await sync_templates(settings, provider)
    blast = await make_blast(await Template.get(name="order_update"), B.SCHEDULED)
    fake.set_template_status("order_update", "DELETED")
    fake.state.templates.delete("welcome")
    local_only = await Template.create(name="never_submitted", language="en", status=T.SUBMITTED)
    report = await sync_templates(settings, provider)
    assert [(c.name, c.new) for c in report.changed] == [("order_update", T.DELETED)]
    assert [p.blast_id for p in report.paused_blasts] == [blast.id]
    # Absent from Meta's list is not a status: reported, left alone (as is a row Meta never knew).
    assert report.missing == ["welcome (id)"]
    assert await status_of("welcome", "id") == T.APPROVED
    assert (await Template.get(id=local_only.id)).status == T.SUBMITTED


async def test_sync_never_overwrites_a_newer_observation(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    """A list fetched before a webhook arrived must not undo that webhook."""
    settings, provider = cloud
    await sync_templates(settings, provider)
    later = utcnow() + timedelta(minutes=5)  # as if a webhook landed while this sync's list was in flight
    await Template.filter(name="order_update").update(status=T.PAUSED, last_synced_at=later)
    report = await sync_templates(settings, provider)
    assert report.changed == []
    assert await status_of("order_update", "en_US") == T.PAUSED


async def test_one_sync_per_slot(cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph) -> None:
    settings, provider = cloud
    slot = int(time.time() // settings.TEMPLATE_SYNC_INTERVAL) + 1000
    results = await asyncio.gather(*(sync_templates_in_slot(settings, provider, slot=slot) for _ in range(4)))
    assert sum(r is not None for r in results) == 1
    assert fake.counts["list_requests"] == 1
    assert not await claim_slot(settings, slot)
    assert await claim_slot(settings, slot + 1)


# ----------------------------------------------------------------------------------------------------------
# webhooks
# ----------------------------------------------------------------------------------------------------------


async def test_status_webhook_from_the_fake_updates_at_once(
    make_settings: object, db: Settings, redis_client: aioredis.Redis
) -> None:
    """The fake's own webhook body, routed to apply_template_event, pauses the template and its blasts."""
    results: list[Any] = []
    settings_box: list[Settings] = []

    async def sink(body: bytes, signature: str) -> None:
        payload = json.loads(body)
        for entry in payload["entry"]:
            for change in entry["changes"]:
                if change["field"] == "message_template_status_update":
                    results.append(await apply_template_event(change["value"], settings=settings_box[0]))

    async with FakeGraph(templates=[ORDER_UPDATE], sink=sink, seed=2) as fake:
        settings = cloud_settings(make_settings, fake)
        settings_box.append(settings)
        provider = CloudClient.from_settings(settings)
        await provider.start()
        try:
            await sync_templates(settings, provider)
        finally:
            await provider.close()
        order = await Template.get(name="order_update")
        blast = await make_blast(order, B.SCHEDULED)
        fake.set_template_status("order_update", "PAUSED", reason="LOW_QUALITY")
        await fake.drain_webhooks()

        async def applied() -> bool:
            return bool(results)

        await wait_for(applied, what="template webhook applied")
    event = results[0]
    assert (event.name, event.old, event.new) == ("order_update", T.APPROVED, T.PAUSED)
    assert [p.blast_id for p in event.paused_blasts] == [blast.id]
    fresh = await Blast.get(id=blast.id)
    assert fresh.status == B.PAUSED
    assert fresh.last_error is not None and "LOW_QUALITY" in fresh.last_error
    assert await status_of("order_update", "en_US") == T.PAUSED


async def test_webhook_rejection_reason_and_odd_events(db: Settings, redis_client: aioredis.Redis) -> None:
    settings = db
    await Template.create(
        name="abandoned_cart", language="en", meta_id="1689556908129835", status=T.SUBMITTED
    )
    value = {
        "event": "REJECTED",
        "message_template_id": 1689556908129835,  # a number in webhooks, a string in API responses
        "message_template_name": "abandoned_cart",
        "message_template_language": "en",
        "reason": "INVALID_FORMAT",
        "rejection_info": {"reason": "Variables at the end", "recommendation": "Add text after {{1}}"},
    }
    result = await apply_template_event(value, settings=settings)
    assert result is not None and (result.old, result.new) == (T.SUBMITTED, T.REJECTED)
    row = await Template.get(name="abandoned_cart")
    assert row.status == T.REJECTED
    assert row.rejection_reason is not None
    assert "INVALID_FORMAT" in row.rejection_reason and "Add text after" in row.rejection_reason

    assert await apply_template_event({**value, "event": "LOCKED"}, settings=settings) is None
    unknown = {
        **value,
        "message_template_id": 1,
        "message_template_name": "made_elsewhere",
        "event": "APPROVED",
    }
    assert await apply_template_event(unknown, settings=settings) is None
    assert await apply_template_event({}, settings=settings) is None

    reinstated = await apply_template_event(
        {**value, "event": "APPROVED", "reason": "NONE"}, settings=settings
    )
    assert reinstated is not None and reinstated.new == T.APPROVED
    assert (await Template.get(name="abandoned_cart")).rejection_reason is None


# ----------------------------------------------------------------------------------------------------------
# submission
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Order Update"}, "template name 'Order Update' is invalid"),
        ({"name": "order-update"}, "lowercase letters, digits and _"),
        ({"language": "english"}, "language 'english' is invalid"),
        ({"category": "PROMO"}, "category 'PROMO' is invalid"),
        ({"category": "AUTHENTICATION"}, "WhatsApp Manager"),
        ({"body": "  "}, "body must not be empty"),
        ({"body": "Hi {{1}}, order {{3}} ships.", "examples": ["a", "b"]}, "number them 1, 2"),
        ({"body": "Hi {{2}}, order ships.", "examples": ["a"]}, "number them 1 without gaps"),
        ({"body": "Hi {{1}}, {{name}} here.", "examples": ["a", "b"]}, "mixes numbered"),
        ({"body": "Hi {{ 1 }} there", "examples": ["a"]}, "invalid parameter"),
        ({"body": "Hi {{1}, there", "examples": ["a"]}, "unbalanced braces"),
        ({"body": "Hi {{First}} there", "examples": {"First": "a"}}, "invalid parameter"),
        ({"body": "{{1}} is your code, thanks", "examples": ["a"]}, "must not start or end"),
        ({"body": "Hi {{1}}, order {{2}} ships.", "examples": ["Ada"]}, "2 parameter(s) but 1 example"),
        ({"body": "Hi {{1}}, order ships.", "examples": [" "]}, "example for parameter {{1}} is empty"),
        ({"body": "Hi {{name}}, hello.", "examples": ["Ada"]}, "name=value"),
        ({"body": "Hi {{name}}, hello.", "examples": {"nmae": "Ada"}}, "example for 'nmae'"),
        (
            {"body": "Hi {{name}}, {{code}} ok.", "examples": {"name": "Ada"}},
            "no example for parameter {{code}}",
        ),
        ({"body": "Hi {{name}}, {{name}} ok.", "examples": {"name": "Ada"}}, "twice"),
        ({"body": "x" * 1025}, "at most 1024"),
        ({"footer": "Reply {{1}}"}, "footer must not contain parameters"),
        ({"header": "Hello {{1}}"}, "header parameters are not supported"),
    ],
)
def test_submission_validation(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "body": "Hi {{1}}, your order ships.",
        "examples": ["Ada"],
    }
    args.update(kwargs)
    with pytest.raises(ValidationFailed) as err:
        build_template(**args)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_build_template_shapes() -> None:
    positional = build_template(
        name="order_update",
        language="en_US",
        category="utility",
        body="Hi {{1}}, order {{2}} ships.",
        examples=["Ada", "42"],
        header="Order news",
        footer="Reply STOP to opt out",
    )
    assert positional.category == "UTILITY" and positional.parameter_format == "POSITIONAL"
    assert positional.parameters == ("1", "2")
    assert positional.components[1]["example"] == {"body_text": [["Ada", "42"]]}
    named = build_template(
        name="welcome",
        language="id",
        category="MARKETING",
        body="Halo {{first_name}}, kode {{code}} ya.",
        examples={"code": "X1", "first_name": "Ada"},
    )
    assert named.parameter_format == "NAMED" and named.parameters == ("first_name", "code")
    assert named.components[0]["example"]["body_text_named_params"][0] == {
        "param_name": "first_name",
        "example": "Ada",
    }
    plain = build_template(name="hello", language="en", category="UTILITY", body="Hello there")
    assert plain.parameters == () and "example" not in plain.components[0]


async def test_submit_stores_submitted_with_meta_id_then_sync_approves(
    cloud: tuple[Settings, WhatsAppProvider], fake: FakeGraph
) -> None:
    settings, provider = cloud
    fake.configure(review_delay_s=0.5)
    result = await submit_template(
        settings=settings,
        provider=provider,
        name="shipping_update",
        language="en_US",
        category="UTILITY",
        body="Hi {{1}}, parcel {{2}} is on its way.",
        examples=["Ada", "PX-1"],
        actor="tester",
    )
    assert result.status == T.SUBMITTED and result.meta_id
    row = await Template.get(name="shipping_update", language="en_US")
    assert (row.meta_id, row.status, row.parameter_names) == (result.meta_id, T.SUBMITTED, ["1", "2"])
    assert await AuditLog.filter(entity="template", action="submit", actor="tester").exists()
    assert [t.id for t in fake.templates() if t.name == "shipping_update"] == [result.meta_id]

    with pytest.raises(ValidationFailed, match="already exists"):
        await submit_template(
            settings=settings,
            provider=provider,
            name="shipping_update",
            language="en_US",
            category="UTILITY",
            body="Hello there",
        )
    assert fake.counts.get("templates_created") == 1

    async def approved() -> bool:
        await sync_templates(settings, provider)
        return await status_of("shipping_update", "en_US") == T.APPROVED

    await wait_for(approved, what="submitted template approved by the fake's review")
