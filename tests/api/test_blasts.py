"""POST /blasts (JSON list and streamed CSV), reading blasts and recipients with cursors, the actions, problem
details with the CLI's messages, the upload limit, and idempotent retries."""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.clock import utcnow
from shared.models import ApiIdempotency, Blast, Recipient
from shared.services import blast_import, blasts, transitions
from shared.services.transitions import SendOutcome
from shared.status import BlastStatus, RecipientStatus
from tests.api.conftest import ApiEnv, problem_of
from tests.factories import make_blast, make_template

B, R = BlastStatus, RecipientStatus
CSV = (
    "phone;1;2\n"
    "+6281234567890;Ada;A1\n"
    "bad;Bob;B2\n"
    "+6281234567891;Cy;C3\n"
    "+6281234567890;Ada again;A4\n"
    "+6281234567892;;C5\n"
)


def blast_json(n: int = 2, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "December promo",
        "template": "order_update",
        "language": "en_US",
        "send_at": "+1h",
        "recipients": [
            {"phone": f"+62812000000{i:02d}", "params": {"1": f"N{i}", "2": f"O{i}"}} for i in range(n)
        ],
    }
    body.update(fields)
    return body


def csv_form(text: str = CSV, filename: str = "customers.csv", **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    values = {"name": "December promo", "template": "order_update", "language": "en_US", "send_at": "+1h"}
    values.update(fields)
    for key, value in values.items():
        form.add_field(key, value)
    form.add_field("recipients", text.encode(), filename=filename, content_type="text/csv")
    return form


async def test_create_from_a_json_list(api: ApiEnv) -> None:
    body = blast_json(3)
    body["recipients"].append({"phone": "not a number", "params": {"1": "x", "2": "y"}})
    body["recipients"].append({"phone": "+6281200000001", "params": {"1": "dup", "2": "dup"}})
    resp = await api.post("/blasts", json=body)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/blasts/{report['id']}"
    assert report["status"] == "SCHEDULED" and report["existing"] is False
    assert (report["accepted"], report["rejected_total"], report["duplicates"]) == (3, 2, 1)
    assert report["rejected"][0]["row"] == 4 and report["rejected"][0]["value"] == "not a number"
    assert report["rejected"][1] == {"row": 5, "value": "+6281200000001", "reason": "duplicate of row 2"}
    row = await Recipient.get(blast_id=report["id"], row=1)
    assert (row.phone, row.params) == ("+6281200000000", {"1": "N0", "2": "O0"})
    blast = await Blast.get(id=report["id"])
    assert blast.created_by == "api:crm" and blast.total == 3


async def test_create_from_a_csv_upload_reports_bad_rows_like_the_cli(api: ApiEnv, tmp_path: Any) -> None:
    resp = await api.post("/blasts", data=csv_form(draft="true", const="2=ignored-when-a-column-exists"))
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert report["status"] == "DRAFT"
    assert (report["accepted"], report["rejected_total"], report["duplicates"]) == (2, 3, 1)
    # the same file through the CLI's service gives the same report
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    cli = await blasts.create_blast(
        settings=api.settings, name="cli", template="order_update", language="en_US", recipients=path
    )
    assert [(r.row, r.value, r.reason) for r in cli.rejected] == [
        (r["row"], r["value"], r["reason"]) for r in report["rejected"]
    ]
    assert cli.recipients == report["accepted"] and cli.duplicates == report["duplicates"]


async def test_a_csv_that_cannot_be_used_is_refused_with_the_clis_message(api: ApiEnv) -> None:
    body = await problem_of(await api.post("/blasts", data=csv_form("name;1;2\nAda;x;y\n")), 422)
    assert body["detail"].startswith("recipients file customers.csv has no 'phone' column in its first line")
    body = await problem_of(await api.post("/blasts", data=csv_form("phone;1\n+6281234567890;x\n")), 422)
    assert body["detail"] == "column '2' missing: template order_update (en_US) needs 1, 2"
    body = await problem_of(await api.post("/blasts", data=csv_form("phone;1;2\nbad;x;y\n")), 422)
    assert body["detail"].startswith(
        "no usable recipients in customers.csv: its one row was rejected (row 1:"
    )
    assert await Blast.all().count() == 0


async def test_service_errors_keep_the_clis_one_line_messages(api: ApiEnv) -> None:
    body = await problem_of(await api.post("/blasts", json=blast_json(template="nope")), 422)
    assert body["detail"] == "unknown template 'nope'; run `blast-console template sync` or check the name"
    body = await problem_of(
        await api.post("/blasts", json=blast_json(send_at="2001-01-01T00:00:00+00:00")), 422
    )
    assert "--send-at" in body["detail"]
    await problem_of(await api.get("/blasts/999"), 404)
    body = await problem_of(await api.get("/blasts/99999999999999/recipients"), 404)
    assert body["detail"] == "blast 99999999999999 does not exist"
    body = await problem_of(await api.post("/blasts/999/pause"), 404)
    assert body["detail"] == "blast 999 does not exist"


async def test_malformed_and_invalid_bodies(api: ApiEnv) -> None:
    body = await problem_of(
        await api.post("/blasts", data=b'{"name": "x",', headers={"Content-Type": "application/json"}), 400
    )
    assert body["detail"].startswith("the body is not valid JSON")
    body = await problem_of(await api.post("/blasts", json={"name": "x"}), 422)
    assert {e["field"] for e in body["errors"]} >= {"template", "language", "recipients"}
    body = await problem_of(await api.post("/blasts", json=blast_json(0)), 422)
    assert body["detail"].startswith("recipients: ")
    body = await problem_of(await api.post("/blasts", json=blast_json(surprise=1)), 422)
    assert body["errors"][0]["field"] == "surprise"
    bad_params = blast_json(1)
    bad_params["recipients"][0]["params"] = {"first name": "x"}
    await problem_of(await api.post("/blasts", json=bad_params), 422)
    await problem_of(await api.post("/blasts", data=b"x", headers={"Content-Type": "text/plain"}), 415)
    for content_type in ("multipart/form-data", "multipart/form-data; boundary=xyz"):
        body = await problem_of(
            await api.post("/blasts", data=b"garbage", headers={"Content-Type": content_type}), 400
        )
        assert body["detail"].startswith("the body is not a valid multipart/form-data form")
    body = await problem_of(await api.post("/blasts", data=csv_form(name="")), 422)
    assert body["errors"][0]["field"] == "name"
    body = await problem_of(
        await api.post("/blasts", data=b"[1]", headers={"Content-Type": "application/json"}), 422
    )
    assert body["errors"][0]["field"] == "body"
    await problem_of(await api.post("/blasts/1/reschedule", json={}), 422)
    await problem_of(await api.get("/blasts?limit=0"), 422)
    body = await problem_of(await api.get("/blasts?color=red"), 422)
    assert body["detail"].startswith("unknown query parameter 'color'")
    await problem_of(await api.get("/blasts?cursor=abc"), 422)
    await problem_of(await api.get("/blasts?cursor=99999999999999"), 422)
    await problem_of(await api.get("/blasts?status=NOPE"), 422)
    await problem_of(await api.client.delete("/api/v1/blasts", headers=api.headers(api.operator)), 405)
    await problem_of(await api.get("/nowhere"), 404)
    assert await Blast.all().count() == 0


async def test_an_upload_over_the_limit_gets_413_and_creates_nothing(make_api: Any) -> None:
    api: ApiEnv = await make_api(BLAST_API_MAX_UPLOAD_MB=1)
    rows = "".join(f"+62812{i:08d};Name {i};Order {i}\n" for i in range(45_000))  # ~1.5 MiB
    big = "phone;1;2\n" + rows
    body = await problem_of(await api.post("/blasts", data=csv_form(big)), 413)
    assert "larger than 1 MiB" in body["detail"]

    async def stream() -> Any:  # chunked: no Content-Length to refuse it early, the limit stops the stream
        yield b"phone;1;2\n"
        for start in range(0, 45_000, 5000):
            yield "".join(f"+62812{i:08d};Name {i};Order {i}\n" for i in range(start, start + 5000)).encode()

    form = aiohttp.FormData()
    for key, value in {"name": "x", "template": "order_update", "language": "en_US"}.items():
        form.add_field(key, value)
    form.add_field("recipients", stream(), filename="big.csv", content_type="text/csv")
    try:
        resp = await api.post("/blasts", data=form)
        await problem_of(resp, 413)
    except aiohttp.ClientError:
        pass  # the server may close the connection while the client still sends; either way nothing is made
    big_json = blast_json(20_000)
    await problem_of(await api.post("/blasts", json=big_json), 413)
    assert await Blast.all().count() == 0


async def test_a_retried_post_with_the_same_key_makes_one_blast(api: ApiEnv) -> None:
    headers = {"Idempotency-Key": "crm-2026-12-promo"}
    first = await api.post("/blasts", json=blast_json(3), headers=headers)
    assert first.status == 201
    first_body = await first.json()
    again = await api.post("/blasts", json=blast_json(3), headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == first_body
    # the key in the body works the same (and is the blast's own key, as `blast create --key`)
    by_body = await api.post("/blasts", data=csv_form(key="crm-2026-12-promo"))
    assert by_body.status == 201 and await by_body.json() == first_body
    assert await Blast.all().count() == 1
    assert (await Blast.get(id=first_body["id"])).client_key == "crm-2026-12-promo"
    # a key first used for something else is refused
    body = await problem_of(await api.post(f"/blasts/{first_body['id']}/pause", headers=headers), 422)
    assert "was first used for POST /api/v1/blasts" in body["detail"]
    await problem_of(
        await api.post("/blasts", json=blast_json(key="other"), headers={"Idempotency-Key": "different"}), 422
    )


async def test_a_key_of_a_blast_made_by_the_cli_returns_that_blast(api: ApiEnv, tmp_path: Any) -> None:
    path = tmp_path / "r.csv"
    path.write_text(CSV, encoding="utf-8")
    made = await blasts.create_blast(
        settings=api.settings,
        name="cli",
        template="order_update",
        language="en_US",
        recipients=path,
        client_key="from-cli",
    )
    resp = await api.post("/blasts", json=blast_json(key="from-cli"))
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == made.id and body["existing"] is True
    assert await Blast.all().count() == 1


async def test_idempotent_actions_replay_the_first_answer(api: ApiEnv) -> None:
    blast_id = (await (await api.post("/blasts", json=blast_json(2))).json())["id"]
    headers = {"Idempotency-Key": '"pause-1"'}
    first = await api.post(f"/blasts/{blast_id}/pause", headers=headers)
    assert first.status == 200
    again = await api.post(f"/blasts/{blast_id}/pause", headers=headers)
    assert again.status == 200 and await again.json() == await first.json()
    await problem_of(await api.post(f"/blasts/{blast_id}/pause"), 409)  # without the key: a second pause
    assert await ApiIdempotency.filter(key="pause-1").count() == 1


async def test_list_filters_by_status_and_pages_by_cursor(api: ApiEnv) -> None:
    template = await make_template(name="promo", language="id")
    for i in range(5):
        await make_blast(template, n=1, name=f"s{i}", status=B.SCHEDULED)
    await make_blast(template, n=1, name="p", status=B.PAUSED)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        resp = await api.get(
            "/blasts", params={"status": "scheduled", "limit": "2", **({"cursor": cursor} if cursor else {})}
        )
        page = await resp.json()
        seen += [b["id"] for b in page["items"]]
        assert all(b["status"] == "SCHEDULED" for b in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    both = await (await api.get("/blasts?status=PAUSED,SCHEDULED&limit=100")).json()
    assert len(both["items"]) == 6 and both["next_cursor"] is None
    named = await (await api.get("/blasts?q=s3")).json()
    assert [b["name"] for b in named["items"]] == ["s3"]


async def test_show_and_recipients_with_cursor_and_status(api: ApiEnv) -> None:
    template = await make_template(name="promo", language="id")
    blast = await make_blast(template, n=7, status=B.PROCESSING)
    ids = [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id")]
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING], ids=ids[:2])
    await transitions.record_send_outcomes(
        [SendOutcome(ids[0], blast.id, R.FAILED, error_code=131026), SendOutcome(ids[1], blast.id, R.UNKNOWN)]
    )
    detail = await (await api.get(f"/blasts/{blast.id}")).json()
    assert detail["total"] == 7 and detail["status"] == "PROCESSING"
    assert detail["counts"] == {
        "pending": 5,
        "sending": 0,
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "failed": 1,
        "cancelled": 0,
        "skipped": 0,
        "unknown": 1,
    }
    # no rate card imported: the cost says so, as `blast show --json` does
    assert detail["cost"]["estimate"]["card_id"] is None and detail["cost"]["estimate"]["total"] is None
    assert detail["cost"]["actual"]["messages"] == 0
    got: list[int] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await (await api.get(f"/blasts/{blast.id}/recipients", params=params)).json()
        got += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == ids
    failed = await (await api.get(f"/blasts/{blast.id}/recipients?status=failed&status=unknown")).json()
    assert [(r["id"], r["status"]) for r in failed["items"]] == [(ids[0], "FAILED"), (ids[1], "UNKNOWN")]
    await problem_of(await api.get("/blasts/999/recipients"), 404)


async def test_actions_follow_the_state_machine(api: ApiEnv) -> None:
    blast_id = (await (await api.post("/blasts", json=blast_json(3))).json())["id"]
    resp = await api.post(f"/blasts/{blast_id}/reschedule", json={"send_at": "2099-01-01T09:00:00+07:00"})
    assert resp.status == 200
    assert await resp.json() == {
        "id": blast_id,
        "status": "SCHEDULED",
        "send_at": "2099-01-01T02:00:00+00:00",
        "quiet_hours": None,
    }
    assert await (await api.post(f"/blasts/{blast_id}/pause")).json() == {
        "id": blast_id,
        "status": "PAUSED",
        "recipients_cancelled": None,
    }
    assert (await (await api.post(f"/blasts/{blast_id}/resume")).json())["status"] == "SCHEDULED"
    body = await problem_of(await api.post(f"/blasts/{blast_id}/retry"), 409)
    assert (
        body["detail"]
        == f"blast {blast_id} is SCHEDULED; only FAILED or partly failed COMPLETED blasts can be retried"
    )
    cancelled = await (await api.post(f"/blasts/{blast_id}/cancel")).json()
    assert cancelled == {"id": blast_id, "status": "CANCELLED", "recipients_cancelled": 3}
    await problem_of(await api.post(f"/blasts/{blast_id}/resume"), 409)
    await problem_of(await api.post(f"/blasts/{blast_id}/reschedule", json={"send_at": "+1h"}), 409)


async def test_reschedule_of_a_processing_blast_is_a_conflict_and_retry_requeues(api: ApiEnv) -> None:
    template = await make_template(name="promo", language="id")
    blast = await make_blast(template, n=2, status=B.PROCESSING, started_at=utcnow())
    body = await problem_of(await api.post(f"/blasts/{blast.id}/reschedule", json={"send_at": "+1h"}), 409)
    assert str(blast.id) in body["detail"]
    ids = [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id")]
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING])
    await transitions.record_send_outcomes(
        [SendOutcome(ids[0], blast.id, R.FAILED, error_code=131026), SendOutcome(ids[1], blast.id, R.UNKNOWN)]
    )
    await transitions.transition_blast(blast.id, B.COMPLETED, actor="t", action="complete")
    resp = await api.post(f"/blasts/{blast.id}/retry", json={"include_unknown": True})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "id": blast.id,
        "status": "PROCESSING",
        "requeued": 2,
        "skipped_opted_out": 0,
        "skipped_recent_cap": 0,
    }


async def test_spooling_stops_at_the_limit_and_keeps_nothing() -> None:
    import tempfile
    from pathlib import Path

    import pytest

    from shared.errors import TooLarge

    before = set(Path(tempfile.gettempdir()).glob("blast-upload-*"))

    async def endless() -> Any:
        while True:
            yield b"x" * 65536

    with pytest.raises(TooLarge, match="larger than 1 MiB"):
        await blast_import.spool_to_file(endless(), max_bytes=1 << 20, what="recipients file big.csv")
    assert set(Path(tempfile.gettempdir()).glob("blast-upload-*")) == before


async def test_constants_fill_what_recipients_lack(api: ApiEnv) -> None:
    body = blast_json(1, constants={"2": "SAME-FOR-ALL"})
    body["recipients"] = [{"phone": "+6281234567890", "params": {"1": "Ada"}}, {"phone": "+6281234567891"}]
    resp = await api.post("/blasts", json=body)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert report["accepted"] == 1 and report["rejected"][0]["row"] == 2  # row 2 lacks parameter 1
    row = await Recipient.get(blast_id=report["id"])
    assert row.params == {"1": "Ada", "2": "SAME-FOR-ALL"}
    form = csv_form("phone,1\n+6281234567890,Ada\n", const="2=C")
    resp = await api.post("/blasts", data=form)
    assert resp.status == 201, await resp.text()
    assert (await Blast.get(id=(await resp.json())["id"])).constants == {"2": "C"}


async def test_concurrent_first_tries_with_one_key_make_one_blast(api: ApiEnv) -> None:
    import asyncio

    headers = {"Idempotency-Key": "race-1"}
    answers = await asyncio.gather(
        *(api.post("/blasts", json=blast_json(50), headers=headers) for _ in range(4))
    )
    assert {r.status for r in answers} <= {200, 201} and 201 in {r.status for r in answers}
    ids = {(await r.json())["id"] for r in answers}
    assert len(ids) == 1 and await Blast.all().count() == 1


async def test_the_detail_carries_the_cost_estimate_of_the_rate_card(api: ApiEnv) -> None:
    """With a rate card imported, GET /blasts/{id} prices the recipients per market, as `blast show --json`."""
    from shared.services import pricing
    from tests.shared.test_pricing import import_sample

    await import_sample()
    pricing.forget_cached_card()
    created = await (await api.post("/blasts", json=blast_json(3))).json()
    detail = await (await api.get(f"/blasts/{created['id']}")).json()
    estimate = detail["cost"]["estimate"]
    assert estimate["currency"] == "IDR" and estimate["messages"] == 3
    assert [line["market"] for line in estimate["lines"]] == ["Indonesia"]
    assert estimate["total"] is not None and float(estimate["total"]) > 0
