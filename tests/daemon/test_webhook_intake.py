"""The lean HTTP intake of POST /webhook (BLAST_WEBHOOK_INTAKE=lean) over raw sockets: keep-alive, pipelining
answered in order, the hand-over of other requests to aiohttp on the same connection, body limits (declared and
chunked), malformed requests, dropped and slow clients, HTTP/1.0, 100-continue, and a graceful shutdown that
answers the stores in flight."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from daemon.http import intake
from shared.models import WebhookEvent
from shared.services.webhooks import sign
from tests.daemon.test_webhook_ingest import _gate_inserts
from tests.daemon.webhook_helpers import APP_SECRET, VERIFY_TOKEN, WebhookEnv, status_payload, wenv

__all__ = ["wenv"]

pytestmark = pytest.mark.parametrize("wenv", ["lean"], indirect=True)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def webhook_post(
    payload: Any = None, *, raw: bytes | None = None, signed: bool = True, extra: str = ""
) -> bytes:
    body = raw if raw is not None else json.dumps(payload).encode()
    signature = f"X-Hub-Signature-256: {sign(APP_SECRET, body)}\r\n" if signed else ""
    head = f"POST /webhook HTTP/1.1\r\nHost: x\r\n{signature}Content-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def chunked_post(body: bytes, *, piece: int = 100) -> bytes:
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece]) for i in range(0, len(body), piece)
    )
    head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: {sign(APP_SECRET, body)}\r\n"
    return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", "0"))), 10)
        return Answer(status, headers, body)

    async def closed(self) -> bool:
        """True once the server closed the connection (nothing more to read)."""
        try:
            return await asyncio.wait_for(self.reader.read(1), 10) == b""
        except ConnectionResetError:
            return True


@pytest.fixture
async def conn(wenv: WebhookEnv) -> AsyncIterator[Conn]:
    reader, writer = await asyncio.open_connection("127.0.0.1", wenv.client.port)
    yield Conn(reader, writer)
    writer.close()


async def test_keep_alive_carries_several_posts(wenv: WebhookEnv, conn: Conn) -> None:
    for i in range(5):
        await conn.send(webhook_post(status_payload(f"wamid.K{i}", "delivered")))
        answer = await conn.answer()
        assert (answer.status, answer.body) == (200, b"ok")
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert "connection" not in answer.headers
    assert await WebhookEvent.all().count() == 5


async def test_pipelined_posts_are_answered_in_order(
    wenv: WebhookEnv, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, calls = asyncio.Event(), list[int]()
    _gate_inserts(monkeypatch, gate, calls)
    posts = [
        webhook_post(status_payload("wamid.P1", "delivered")),  # waits for its commit
        webhook_post(status_payload("wamid.P2", "delivered"), signed=False),  # refused at once
        webhook_post(raw=b'{"object": "page"}'),  # ignored at once
        webhook_post(status_payload("wamid.P3", "delivered")),
    ]
    await conn.send(b"".join(posts))
    reading = asyncio.create_task(conn.answer())
    await asyncio.sleep(0.3)
    assert not reading.done()  # the 401 behind the first POST is not written before its 200
    gate.set()
    answers = [await reading] + [await conn.answer() for _ in range(3)]
    assert [(a.status, a.body) for a in answers] == [
        (200, b"ok"),
        (401, b"signature missing"),
        (200, b"ignored"),
        (200, b"ok"),
    ]
    assert await WebhookEvent.all().count() == 2


async def test_other_requests_on_the_same_connection_go_to_aiohttp(wenv: WebhookEnv, conn: Conn) -> None:
    # A POST, then (pipelined) the health check and the verification handshake: aiohttp answers those two after
    # the 200, on the same connection, and keeps the connection for a POST after them.
    challenge = (
        f"GET /webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42 HTTP/1.1\r\n"
    )
    await conn.send(
        webhook_post(status_payload("wamid.H1", "delivered"))
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        + challenge.encode()
        + b"Host: x\r\n\r\n"
    )
    first, health, verify = await conn.answer(), await conn.answer(), await conn.answer()
    assert (first.status, first.body) == (200, b"ok")
    assert health.status == 200 and b"ok" in health.body.lower()
    assert (verify.status, verify.body) == (200, b"42")
    # a request with a body handed over: aiohttp reads exactly its body, then the next request
    await conn.send(
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
        + webhook_post(status_payload("wamid.H2", "delivered"))
    )
    refused, last = await conn.answer(), await conn.answer()
    assert refused.status == 405
    assert (last.status, last.body) == (200, b"ok")
    assert await WebhookEvent.all().count() == 2


async def test_a_declared_body_over_the_limit_is_413_and_closes(wenv: WebhookEnv, conn: Conn) -> None:
    limit = wenv.settings.BLAST_WEBHOOK_MAX_BODY
    await conn.send(f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {limit + 1}\r\n\r\n".encode())
    answer = await conn.answer()
    assert (answer.status, answer.body) == (413, b"body too large")
    assert answer.headers["connection"] == "close"
    assert await conn.closed()
    assert await WebhookEvent.all().count() == 0


async def test_chunked_bodies_are_stored_and_refused_past_the_limit(wenv: WebhookEnv, conn: Conn) -> None:
    body = json.dumps(status_payload("wamid.C1", "delivered")).encode()
    await conn.send(chunked_post(body, piece=7))
    answer = await conn.answer()
    assert (answer.status, answer.body) == (200, b"ok")
    assert [e.body for e in await WebhookEvent.all()] == [body.decode()]

    big = b'{"entry": "' + b"x" * wenv.settings.BLAST_WEBHOOK_MAX_BODY + b'"}'
    await conn.send(chunked_post(big, piece=4096))
    answer = await conn.answer()
    assert (answer.status, answer.body) == (413, b"body too large")
    assert await conn.closed()
    assert await WebhookEvent.all().count() == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /webhook HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /webhook HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /webhook HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /webhook HTTP/1.1\r\nX: " + b"a" * (intake.MAX_HEAD + 10) + b"\r\n\r\n",
    ],
    ids=["bad-length", "length-and-chunked", "bad-chunk-size", "bad-header", "head-too-long"],
)
async def test_a_malformed_request_is_400_and_closes(
    wenv: WebhookEnv, conn: Conn, request_bytes: bytes
) -> None:
    await conn.send(request_bytes)
    answer = await conn.answer()
    assert answer.status == 400
    assert answer.headers["connection"] == "close"
    assert await conn.closed()
    assert await WebhookEvent.all().count() == 0


async def test_a_half_sent_body_dropped_stores_nothing(wenv: WebhookEnv, conn: Conn) -> None:
    whole = webhook_post(status_payload("wamid.D1", "delivered"))
    await conn.send(whole[:-10])
    await asyncio.sleep(0.1)
    conn.writer.close()
    await asyncio.sleep(0.2)
    assert await WebhookEvent.all().count() == 0
    # the server is fine: the next connection is answered
    reader, writer = await asyncio.open_connection("127.0.0.1", wenv.client.port)
    other = Conn(reader, writer)
    await other.send(whole)
    assert (await other.answer()).status == 200
    writer.close()


async def test_connection_close_and_http_1_0(wenv: WebhookEnv, conn: Conn) -> None:
    await conn.send(webhook_post(status_payload("wamid.E1", "delivered"), extra="Connection: close\r\n"))
    answer = await conn.answer()
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await conn.closed()

    for extra, keep in (("", False), ("Connection: keep-alive\r\n", True)):
        reader, writer = await asyncio.open_connection("127.0.0.1", wenv.client.port)
        old = Conn(reader, writer)
        data = webhook_post(status_payload("wamid.E2", "read"), extra=extra).replace(
            b"HTTP/1.1", b"HTTP/1.0", 1
        )
        await old.send(data)
        answer = await old.answer()
        assert answer.status == 200
        assert answer.headers["connection"] == ("keep-alive" if keep else "close")
        if not keep:
            assert await old.closed()
        writer.close()
    assert await WebhookEvent.all().count() == 3


async def test_expect_100_continue(wenv: WebhookEnv, conn: Conn) -> None:
    whole = webhook_post(status_payload("wamid.X1", "delivered"), extra="Expect: 100-continue\r\n")
    head, _, body = whole.partition(b"\r\n\r\n")
    await conn.send(head + b"\r\n\r\n")
    assert await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    await conn.send(body)
    assert (await conn.answer()).status == 200


async def test_a_slow_request_is_cut_off(wenv: WebhookEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "READ_TIMEOUT_S", 0.3)
    monkeypatch.setattr(intake, "SWEEP_S", 0.05)
    (site,) = wenv.client.runner.sites
    assert isinstance(site, intake.LeanSite)
    # the sweeper already sleeps for the old period: restart it with the short one
    await site.intake.shutdown(0)
    site.intake.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", wenv.client.port)
    slow = Conn(reader, writer)
    await slow.send(webhook_post(status_payload("wamid.S1", "delivered"))[:30])
    assert await slow.closed()
    writer.close()
    assert await WebhookEvent.all().count() == 0


async def test_shutdown_answers_the_stores_in_flight(
    wenv: WebhookEnv, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, calls = asyncio.Event(), list[int]()
    _gate_inserts(monkeypatch, gate, calls)
    await conn.send(webhook_post(status_payload("wamid.Z1", "delivered")))
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.01)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", wenv.client.port)
    stopping = asyncio.create_task(wenv.client.close())
    await asyncio.sleep(0.2)
    assert await Conn(idle_reader, idle_writer).closed()  # an idle connection is closed at once
    assert not stopping.done()  # the store in flight is waited for
    gate.set()
    answer = await conn.answer()
    assert (answer.status, answer.body) == (200, b"ok")
    assert await conn.closed()
    await stopping
    idle_writer.close()
    assert await WebhookEvent.all().count() == 1


async def test_reading_pauses_while_too_many_answers_wait(
    wenv: WebhookEnv, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "MAX_IN_FLIGHT", 3)
    gate, calls = asyncio.Event(), list[int]()
    _gate_inserts(monkeypatch, gate, calls)
    await conn.send(b"".join(webhook_post(status_payload(f"wamid.M{i}", "delivered")) for i in range(8)))
    await asyncio.sleep(0.3)
    assert sum(calls) == 3  # the first three are being stored; the rest waits unread
    gate.set()
    answers = [await conn.answer() for _ in range(8)]
    assert [a.status for a in answers] == [200] * 8
    assert await WebhookEvent.all().count() == 8
