"""GET /templates, /search and /queue: the CLI's data through the same services."""

from __future__ import annotations

import time

from shared.models import Recipient
from shared.services import live
from shared.status import BlastStatus, TemplateStatus
from tests.api.conftest import ApiEnv, problem_of
from tests.factories import NAMED_COMPONENTS, make_blast, make_template


async def test_templates_with_status_filter(api: ApiEnv) -> None:
    await make_template(
        name="promo",
        language="id",
        components=NAMED_COMPONENTS,
        parameter_format="NAMED",
        category="MARKETING",
    )
    await make_template(name="old", language="id", status=TemplateStatus.PAUSED)
    items = (await (await api.get("/templates", auth="viewer")).json())["items"]
    assert [(t["name"], t["language"], t["status"]) for t in items] == [
        ("old", "id", "PAUSED"),
        ("order_update", "en_US", "APPROVED"),
        ("promo", "id", "APPROVED"),
    ]
    promo = items[2]
    assert promo["parameters"] == ["first_name", "code"] and promo["category"] == "MARKETING"
    approved = (await (await api.get("/templates?status=approved")).json())["items"]
    assert {t["name"] for t in approved} == {"order_update", "promo"}


async def test_search_finds_a_number_across_blasts(api: ApiEnv) -> None:
    template = await make_template(name="promo", language="id")
    a = await make_blast(template, n=2, name="first")
    b = await make_blast(template, n=1, name="second", status=BlastStatus.PAUSED)
    hits = (await (await api.get("/search", params={"phone": "+6281200000000"})).json())["items"]
    assert [(h["blast_id"], h["blast"], h["blast_status"], h["status"]) for h in hits] == [
        (b.id, "second", "PAUSED", "PENDING"),
        (a.id, "first", "SCHEDULED", "PENDING"),
    ]
    assert await Recipient.filter(phone="+6281200000000").count() == 2
    body = await problem_of(await api.get("/search", params={"phone": "hello"}), 422)
    assert "phone" in body["detail"] or "number" in body["detail"]
    await problem_of(await api.get("/search"), 422)


async def test_queue_shows_streams_daemons_and_rate(api: ApiEnv) -> None:
    await live.heartbeat(
        api.settings,
        live.DaemonInfo(
            id="d1",
            host="h",
            pid=1,
            started_at=0.0,
            last_seen=time.time(),
            provider="sandbox",
            version="0",
            chunks=["1:0"],
        ),
    )
    body = await (await api.get("/queue", auth="viewer")).json()
    assert set(body) == {"streams", "daemons", "rate"}
    assert body["rate"]["limit"] == api.settings.BLAST_RATE_LIMIT
    assert all(set(s) == {"name", "length", "pending", "consumers"} for s in body["streams"])
    assert [(d["id"], d["chunks"]) for d in body["daemons"]] == [("d1", ["1:0"])]
