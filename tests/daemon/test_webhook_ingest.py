"""The durable inbox behind POST /webhook: a 200 only once the raw body is committed, 503 when it cannot be,
group commit under concurrency (every body stored exactly once, in fewer INSERTs than POSTs), and the cheap
shape check that replaced parsing in the handler."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from tortoise import connections

from daemon.http.app import WRITER
from daemon.http.webhook import notification_text
from shared.models import WebhookEvent
from shared.services.webhooks import EventWriter, inbox
from tests.daemon.webhook_helpers import WebhookEnv, apply_all, status_payload, wenv

__all__ = ["wenv"]


def _writer(env: WebhookEnv) -> EventWriter:
    app = env.client.app
    assert app is not None
    writer: EventWriter = app[WRITER]
    return writer


def _gate_inserts(monkeypatch: pytest.MonkeyPatch, gate: asyncio.Event, calls: list[int]) -> None:
    """Every INSERT of the writer waits for `gate`, then runs for real."""
    real_pg, real_other = inbox.insert_events_pg, inbox.insert_events

    async def gated_pg(con: Any, rows: Sequence[tuple[str, datetime]]) -> None:
        calls.append(len(rows))
        await gate.wait()
        await real_pg(con, rows)

    async def gated_other(rows: Sequence[tuple[str, datetime]]) -> None:
        calls.append(len(rows))
        await gate.wait()
        await real_other(rows)

    monkeypatch.setattr(inbox, "insert_events_pg", gated_pg)
    monkeypatch.setattr(inbox, "insert_events", gated_other)


async def test_the_200_waits_for_the_commit(wenv: WebhookEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, calls = asyncio.Event(), list[int]()
    _gate_inserts(monkeypatch, gate, calls)
    post = asyncio.create_task(wenv.post(status_payload("wamid.G1", "delivered")))
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert calls == [1]
    assert not post.done()  # the INSERT has not run: no answer yet
    assert await WebhookEvent.all().count() == 0
    gate.set()
    resp = await post
    assert resp.status == 200
    assert await WebhookEvent.all().count() == 1


async def test_a_refused_insert_is_answered_503_and_nothing_is_stored(wenv: WebhookEnv) -> None:
    db = connections.get("default")
    await db.execute_script("ALTER TABLE webhook_event RENAME TO webhook_event_away")
    try:
        resp = await wenv.post(status_payload("wamid.G2", "delivered"))
        assert resp.status == 503
    finally:
        await db.execute_script("ALTER TABLE webhook_event_away RENAME TO webhook_event")
    assert await WebhookEvent.all().count() == 0
    # the writer goes on once the database takes rows again (Meta's retry is stored)
    resp = await wenv.post(status_payload("wamid.G2", "delivered"))
    assert resp.status == 200
    assert await WebhookEvent.all().count() == 1


async def test_a_body_not_stored_in_time_is_answered_503(
    wenv: WebhookEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, calls = asyncio.Event(), list[int]()
    _gate_inserts(monkeypatch, gate, calls)  # never opened: the database hangs
    _writer(wenv).timeout_s = 0.3
    resp = await asyncio.wait_for(wenv.post(status_payload("wamid.G3", "delivered")), 5)
    assert resp.status == 503
    assert await WebhookEvent.all().count() == 0


async def test_concurrent_posts_share_inserts_and_each_body_is_stored_once(
    wenv: WebhookEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, calls = asyncio.Event(), list[int]()
    _gate_inserts(monkeypatch, gate, calls)
    n = 120
    bodies = [json.dumps(status_payload(f"wamid.C{i}", "delivered")) for i in range(n)]
    posts = [asyncio.create_task(wenv.post(None, raw=b.encode())) for b in bodies]
    await asyncio.sleep(0.3)  # the first INSERT holds; the others queue behind it
    gate.set()
    answers = await asyncio.gather(*posts)
    assert [r.status for r in answers] == [200] * n
    stored = [str(b) for b in await WebhookEvent.all().values_list("body", flat=True)]
    assert sorted(stored) == sorted(bodies)
    assert sum(calls) == n
    assert len(calls) < n / 4, calls  # group commit: many POSTs per INSERT
    assert _writer(wenv).rows == n


async def test_signed_bodies_that_cannot_be_notifications_are_refused(wenv: WebhookEnv) -> None:
    for raw in (b"{not json", b"\xff{}", b'{"entry": "\x00"}', b"[1, 2]", b"", b"plain text"):
        assert (await wenv.post(None, raw=raw)).status == 400, raw
    assert (await wenv.post(None, raw=b'{"object": "page"}')).status == 200  # no "entry": ignored
    assert await WebhookEvent.all().count() == 0


async def test_a_signed_brace_body_that_is_not_json_is_stored_and_set_aside(wenv: WebhookEnv) -> None:
    resp = await wenv.post(None, raw=b'{"entry": [} junk')
    assert resp.status == 400  # does not end with a brace
    resp = await wenv.post(None, raw=b'{"entry": [}')
    assert resp.status == 200
    await apply_all(wenv.settings)
    event = await WebhookEvent.get()
    assert event.processed_at is not None
    assert event.error is not None and "not JSON" in event.error


def test_notification_text() -> None:
    assert notification_text(b' {"entry": []}\n') == ' {"entry": []}\n'
    assert notification_text(b'{"a": "\\u00e9"}') is not None
    assert notification_text('{"a": "é"}'.encode()) is not None
    for junk in (b"", b"{", b"}", b"[]", b"\xc3(", b"{\x00}"):
        assert notification_text(junk) is None, junk
