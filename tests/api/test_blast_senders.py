"""POST /blasts with a sender pool, at local time and with quiet hours: what the CLI's `blast create` takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from shared.models import Blast, Sender
from tests.api.conftest import ApiEnv, problem_of
from tests.api.test_blasts import blast_json
from tests.api.test_openapi import check

N1, N2, N3 = "900000000000001", "900000000000002", "900000000000003"


async def add_senders() -> None:
    await Sender.create(phone_number_id=N1, waba_id="W1", token_env="BLAST_TEST_TOKEN_A")
    await Sender.create(phone_number_id=N2, waba_id="W1", token_env="BLAST_TEST_TOKEN_A")
    await Sender.create(phone_number_id=N3, waba_id="W2", token_env="BLAST_TEST_TOKEN_A")


async def test_a_pool_blast_stores_and_shows_its_senders(api: ApiEnv) -> None:
    await add_senders()
    resp = await api.post("/blasts", json=blast_json(4, senders=[N1, N2]))
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert report["accepted"] == 4 and report["messaging_limit_warning"] is None
    assert (await Blast.get(id=report["id"])).senders == [N1, N2]
    shown = await (await api.get(f"/blasts/{report['id']}")).json()
    assert shown["senders"] == [N1, N2] and shown["zones"] == []
    # a form takes the CLI's ID,ID
    form = aiohttp.FormData()
    for k, v in {
        "name": "p",
        "template": "order_update",
        "language": "en_US",
        "senders": f"{N2},{N1}",
    }.items():
        form.add_field(k, v)
    form.add_field(
        "recipients", b"phone;1;2\n+6281234567890;A;B\n", filename="r.csv", content_type="text/csv"
    )
    resp = await api.post("/blasts", data=form)
    assert resp.status == 201, await resp.text()
    assert (await Blast.get(id=(await resp.json())["id"])).senders == [N2, N1]


async def test_a_local_time_blast_shows_its_zones(api: ApiEnv) -> None:
    body = blast_json(0, send_at="2099-12-08 09:00", local_time=True, timezone="WITA")
    body["recipients"] = [
        {"phone": "+6281234567890", "params": {"1": "Ada", "2": "A1", "timezone": "WIB"}},
        {"phone": "+6281234567891", "params": {"1": "Bo", "2": "B2", "timezone": "WIT"}},
    ]
    resp = await api.post("/blasts", json=body)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    shown = await (await api.get(f"/blasts/{report['id']}")).json()
    assert (shown["local_time"], shown["timezone"]) == ("2099-12-08T09:00", "Asia/Makassar")
    assert shown["send_at"] == "2099-12-08T00:00:00+00:00" and shown["senders"] is None
    assert [(z["zone"], z["due_at"], z["waiting"]) for z in shown["zones"]] == [
        ("Asia/Jayapura", "2099-12-08T00:00:00+00:00", 1),
        ("Asia/Jakarta", "2099-12-08T02:00:00+00:00", 1),
    ]


async def test_bad_senders_zones_and_windows_are_problems_and_create_nothing(api: ApiEnv) -> None:
    await add_senders()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sender": "123456"}, "unknown sender 123456"),
        ({"senders": f"{N1},{N3}"}, "one WABA"),
        ({"sender": N1, "senders": N2}, "not both"),
        ({"local_time": True, "timezone": "Moon/Base"}, "--timezone"),
        ({"quiet_hours": "25:00-08:00"}, "--quiet-hours"),
    ]
    for fields, text in cases:
        resp = await api.post("/blasts", json=blast_json(2, **fields))
        problem = await problem_of(resp, 422)
        assert text in problem["detail"], (fields, problem["detail"])
    assert await Blast.all().count() == 0


async def test_the_report_carries_the_limit_warning_and_the_quiet_hours_note(
    make_api: Callable[..., Any],
) -> None:
    api: ApiEnv = await make_api(BLAST_MESSAGING_LIMIT=1, BLAST_RATE_LIMIT=1.0)
    doc = await (await api.get("/openapi.json", auth=None)).json()
    report_schema = doc["paths"]["/blasts"]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"
    ]
    detail_schema = doc["paths"]["/blasts/{blast_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    # at one message a second from 20:59:59 WITA, one goes before 21:00 and two wait for 08:00
    body = blast_json(0, send_at="2099-12-08T20:59:59+08:00", quiet_hours="21:00-08:00")
    body["recipients"] = [
        {"phone": f"+628123456789{i}", "params": {"1": "A", "2": "B", "timezone": "WITA"}} for i in range(3)
    ]
    strict = await api.post("/blasts", json=body | {"strict": True})
    problem = await problem_of(strict, 422)
    assert "portfolio's limit is 1" in problem["detail"] and "(strict: nothing created)" in problem["detail"]
    assert await Blast.all().count() == 0
    resp = await api.post("/blasts", json=body)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    check(report_schema, report, doc)
    assert "would reach 3 new users in 24 h" in report["messaging_limit_warning"]
    assert report["quiet_hours"] == "about 2 recipients will wait until 08:00 WITA"
    shown = await (await api.get(f"/blasts/{report['id']}")).json()
    check(detail_schema, shown, doc)
    assert shown["senders"] is None and shown["zones"] == []


async def test_a_draft_with_quiet_hours_says_who_waits_when_it_is_scheduled(
    make_api: Callable[..., Any],
) -> None:
    api: ApiEnv = await make_api(BLAST_RATE_LIMIT=1.0, BLAST_QUIET_HOURS="21:00-08:00")
    doc = await (await api.get("/openapi.json", auth=None)).json()
    schema = doc["paths"]["/blasts/{blast_id}/reschedule"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    body = blast_json(0, draft=True)  # BLAST_QUIET_HOURS applies to a draft too
    body["recipients"] = [
        {"phone": f"+628123456789{i}", "params": {"1": "A", "2": "B", "timezone": "WITA"}} for i in range(3)
    ]
    resp = await api.post("/blasts", json=body)
    assert resp.status == 201, await resp.text()
    blast_id = (await resp.json())["id"]
    assert (await Blast.get(id=blast_id)).quiet_hours == "21:00-08:00"
    resp = await api.post(f"/blasts/{blast_id}/reschedule", json={"send_at": "2099-12-08T20:59:59+08:00"})
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    check(schema, answer, doc)
    assert answer["status"] == "SCHEDULED"
    assert answer["quiet_hours"] == "about 2 recipients will wait until 08:00 WITA"
