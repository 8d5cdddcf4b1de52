"""Provides the lean HTTP/1.1 intake of the daemon's HTTP port (BLAST_WEBHOOK_INTAKE=lean): POST /webhook is read
by an asyncio.Protocol with httptools (the C parser uvicorn uses) and answered here; every other request
(GET /webhook, /healthz, /metrics, the API) is handed over, with its connection, to the aiohttp application.

Why: aiohttp costs about 100 µs of CPU per request (request and response objects, header multidicts, a task per
request, timers), two thirds of a daemon's CPU per status webhook (issue #19). A POST /webhook needs none of it:
three headers, a body, a status line back. The decisions (size, signature, shape, group commit, 503) are the
ones of daemon.http.webhook (`refuse_length`, `judge`, `not_stored`), shared with the aiohttp handler.

HTTP behaviour: keep-alive; pipelined requests handled at once (their bodies share a group commit) and answered
in order; `Connection: close` and HTTP/1.0 honoured; Content-Length and chunked bodies, over BLAST_WEBHOOK_MAX_BODY
answered 413 and the connection closed; `Expect: 100-continue` answered when nothing is in flight; a malformed
request answered 400 and the connection closed. A request must arrive whole within READ_TIMEOUT_S of its first
byte and an idle connection is closed after IDLE_TIMEOUT_S (slow-loris); the buffer holds at most one request's
head plus its body limit, and reading pauses while MAX_IN_FLIGHT answers wait. A request that is not POST /webhook
is handed over at its first byte, once the answers before it are written: aiohttp's protocol takes the
transport and the buffered bytes, and the connection is aiohttp's from then on (also for its shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

import httptools
from aiohttp import web

from daemon.http.webhook import STORE_TIMEOUT_S, body_too_large, judge, not_stored, refuse_length
from shared.config import Settings
from shared.services.webhooks import EventWriter

log = logging.getLogger(__name__)

__all__ = ["IDLE_TIMEOUT_S", "MAX_HEAD", "READ_TIMEOUT_S", "Intake", "LeanSite"]

#: Longest request head (request line and headers), bytes; aiohttp allows 8,190 per line.
MAX_HEAD = 16 * 1024
#: Answers one connection may have waiting for their commit before reading pauses.
MAX_IN_FLIGHT = 64
#: A request must arrive whole within this many seconds of its first byte.
READ_TIMEOUT_S = 30.0
#: A connection with nothing in flight is closed after this many seconds (aiohttp's keep-alive timeout).
IDLE_TIMEOUT_S = 75.0
#: How often the timeouts are checked (one timer per server, not one per request).
SWEEP_S = 1.0

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY = -1  # _Conn._need while a head is awaited
_CHUNKED = -2  # _Conn._need while a chunked body is read


class _Refused(Exception):
    """A request answered with `status` and the connection closed."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _is_webhook_post(buf: bytearray) -> bool:
    return buf.startswith(b"POST /webhook ") or buf.startswith(b"POST /webhook?")


def chunked_end(buf: bytearray | bytes, limit: int) -> int | None:
    """The length of the chunked body at the start of `buf` (trailers and final CRLF included), None while it is
    incomplete.

    Raises:
        _Refused: the body decodes to more than `limit` bytes (413), or a chunk-size line is unreadable (400).
    """
    pos = total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise _Refused(400, "bad request")
            return None
        digits = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        if not digits or digits.strip(b"0123456789abcdefABCDEF"):
            raise _Refused(400, "bad request")
        size = int(digits, 16)
        pos = eol + 2
        if size == 0:
            while True:  # trailers, up to the empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > MAX_HEAD:
                        raise _Refused(400, "bad request")
                    return None
                if eol == pos:
                    return pos + 2
                pos = eol + 2
        total += size
        if total > limit:
            status, text = body_too_large(limit)
            raise _Refused(status, text)
        if len(buf) < pos + size + 2:
            return None
        pos += size + 2


class Intake:
    """The lean intake of one listener: its connections, its timeouts and the aiohttp hand-over.

    Args:
        settings: the daemon's settings (app secret, body limit).
        writer: the webhook inbox (the group commit behind each 200).
        aiohttp_server: `web.AppRunner(app).server`, the protocol factory other requests are handed to.
    """

    def __init__(self, settings: Settings, writer: EventWriter, aiohttp_server: Any) -> None:
        self.settings = settings
        self.writer = writer
        self.limit = settings.BLAST_WEBHOOK_MAX_BODY
        self.aiohttp_server = aiohttp_server
        self.conns: set[_Conn] = set()
        self.date = b""
        self.responses: dict[tuple[int, str, bool, bool], tuple[bytes, bytes]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()

    def protocol(self) -> _Conn:
        return _Conn(self)

    def start(self) -> None:
        self._set_date()
        self._sweeper = asyncio.create_task(self._sweep(), name="webhook-intake-timeouts")

    def response(self, status: int, text: str, keep: bool, http10: bool) -> bytes:
        """The bytes of an answer (the Date line refreshed every second)."""
        key = (status, text, keep, http10)
        cached = self.responses.get(key)
        if cached is None:
            body = text.encode()
            if not keep:
                connection = b"Connection: close\r\n"
            else:
                connection = b"Connection: keep-alive\r\n" if http10 else b""
            head = (
                b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s"
                % (
                    status,
                    HTTPStatus(status).phrase.encode(),
                    len(body),
                    connection,
                )
            )
            cached = self.responses[key] = (head, body)
        return b"%sDate: %s\r\n\r\n%s" % (cached[0], self.date, cached[1])

    def _set_date(self) -> None:
        self.date = formatdate(usegmt=True).encode()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            self._set_date()
            now = loop.time()
            for conn in [c for c in self.conns if c.deadline < now]:
                conn.expire()

    def forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if not self.conns:
            self._drained.set()

    async def shutdown(self, timeout_s: float = STORE_TIMEOUT_S + 1) -> None:
        """Stop taking requests: idle connections and half-received requests are closed now (nothing of theirs
        is stored); the answers in flight are written (their rows committed or failed) before their connection
        closes, waiting at most `timeout_s`."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for conn in list(self.conns):
            conn.stop()
        if self.conns:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._drained.wait()
        for conn in list(self.conns):
            conn.abort()


class _Conn(asyncio.Protocol):
    """One client connection while it sends POST /webhook requests."""

    __slots__ = (
        "_buf",
        "_closing",
        "_complete",
        "_expect",
        "_flush_soon",
        "_handing",
        "_headers",
        "_http10",
        "_keep",
        "_loop",
        "_need",
        "_parser",
        "_parts",
        "_paused",
        "_queue",
        "_remote",
        "_started",
        "_write_paused",
        "deadline",
        "intake",
        "transport",
    )

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.transport: asyncio.Transport | None = None
        self.deadline = float("inf")
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._buf = bytearray()
        self._queue: deque[list[bytes | None]] = deque()  # answers in request order; None while storing
        self._need = _NO_BODY
        self._headers: dict[bytes, bytes] = {}
        self._parts: list[bytes] = []
        self._complete = False
        self._keep = True
        self._http10 = False
        self._expect = False
        self._started: float | None = None
        self._closing = False
        self._handing = False
        self._paused = False
        self._write_paused = False
        self._flush_soon = False
        self._remote: str | None = None

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.intake.conns.add(self)
        self.deadline = self._loop.time() + IDLE_TIMEOUT_S

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buf += data
        if not self._handing:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.transport = None
        self._queue.clear()
        self.intake.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume()

    # --- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.setdefault(name.lower(), value)

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self._complete = True

    # --- requests
    def _process(self) -> None:
        buf = self._buf
        try:
            while buf and not self._closing and not self._handing and len(self._queue) < MAX_IN_FLIGHT:
                if self._need == _NO_BODY and not self._read_head():
                    break
                if not self._read_body():
                    break
        except _Refused as exc:
            self._refuse(exc.status, exc.text)
        except (
            Exception
        ):  # a bug here: answer like aiohttp would (500) and drop the connection, not the server
            log.exception("webhook intake: request from %s failed", self._remote)
            self._refuse(500, "internal server error")
        if self._paused or self._closing:
            pass
        elif len(self._queue) >= MAX_IN_FLIGHT:
            self._pause()
        if self._queue and not self._flush_soon:
            self._flush()
        self._set_deadline()

    def _read_head(self) -> bool:
        buf = self._buf
        if self._started is None:
            self._started = self._loop.time()
        end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise _Refused(400, "bad request")
            if len(buf) >= 14 and not _is_webhook_post(buf):
                self._hand_off()
            return False
        if not _is_webhook_post(buf):
            self._hand_off()
            return False
        head = bytes(buf[: end + 4])
        del buf[: end + 4]
        self._headers = {}
        self._parts = []
        self._complete = False
        try:
            self._parser.feed_data(head)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            raise _Refused(400, "bad request") from None
        headers = self._headers
        self._keep = self._parser.should_keep_alive()
        self._http10 = self._parser.get_http_version() == "1.0"
        if b"transfer-encoding" in headers:
            self._need = _CHUNKED
        else:
            length = int(headers.get(b"content-length", b"0"))
            refused = refuse_length(length, self.intake.limit)
            if refused is not None:
                raise _Refused(*refused)
            self._need = length
        self._expect = headers.get(b"expect", b"").lower() == b"100-continue"
        return True

    def _read_body(self) -> bool:
        buf = self._buf
        need = self._need
        if need == _CHUNKED:
            end = chunked_end(buf, self.intake.limit)
            if end is None:
                self._continue()
                return False
            need = end
        elif len(buf) < need:
            self._continue()
            return False
        if need:
            body = bytes(buf[:need])
            del buf[:need]
            try:
                self._parser.feed_data(body)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                raise _Refused(400, "bad request") from None
        if not self._complete:  # the parser and the framing disagree
            raise _Refused(400, "bad request")
        self._need = _NO_BODY
        self._started = None
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        signature = self._headers.get(b"x-hub-signature-256")
        status, text, stored = judge(
            self.intake.settings,
            self.intake.writer,
            body,
            None if signature is None else signature.decode("latin-1"),
            self._remote,
        )
        keep, http10 = self._keep, self._http10
        if stored is None:
            self._queue.append([self.intake.response(status, text, keep, http10)])
        else:
            entry: list[bytes | None] = [None]
            self._queue.append(entry)
            stored.add_done_callback(lambda f: self._stored(f, entry, (status, text, keep, http10)))
        if not keep:
            self._closing = True
        return True

    def _continue(self) -> None:
        if self._expect:
            self._expect = False
            if not self._queue and not self._buf and self.transport is not None:
                self.transport.write(_CONTINUE)

    def _stored(
        self, stored: asyncio.Future[None], entry: list[bytes | None], answer: tuple[int, str, bool, bool]
    ) -> None:
        """The group commit of a body is done: its answer (`judge`'s, or 503) takes its place in the queue."""
        status, text, keep, http10 = answer
        if stored.cancelled():
            status, text = not_stored(asyncio.CancelledError())
        elif (exc := stored.exception()) is not None:
            status, text = not_stored(exc)
        entry[0] = self.intake.response(status, text, keep, http10)
        if not self._flush_soon:  # the writer resolves a whole batch at once: one write for all of them
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _refuse(self, status: int, text: str) -> None:
        self._queue.append([self.intake.response(status, text, False, self._http10)])
        self._closing = True
        self._buf.clear()

    def _flush(self) -> None:
        self._flush_soon = False
        transport = self.transport
        if transport is None:
            return
        queue = self._queue
        ready: list[bytes] = []
        while queue and (data := queue[0][0]) is not None:
            ready.append(data)
            queue.popleft()
        if ready:
            transport.write(ready[0] if len(ready) == 1 else b"".join(ready))
        if queue:
            return
        if self._closing:
            transport.close()
        elif self._handing:
            self._give_to_aiohttp()
        else:
            if self._paused and not self._write_paused:
                self._resume()
            if self._buf and not self._paused:
                self._process()
            self._set_deadline()

    def _hand_off(self) -> None:
        self._handing = True
        self.deadline = float("inf")
        if self._queue:
            self._pause()  # the bytes of aiohttp's request wait here, bounded, until the answers before it are out
        else:
            self._give_to_aiohttp()

    def _give_to_aiohttp(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self.intake.forget(self)
        self.transport = None
        self._closing = True
        data, self._buf = bytes(self._buf), bytearray()
        handler = self.intake.aiohttp_server()
        handler.connection_made(transport)
        transport.set_protocol(handler)
        if self._paused:
            transport.resume_reading()
        if data:
            handler.data_received(data)

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self.transport is not None and len(self._queue) < MAX_IN_FLIGHT:
            self._paused = False
            self.transport.resume_reading()

    def _set_deadline(self) -> None:
        if self._handing or self._closing:
            return
        if self._buf or self._need != _NO_BODY:
            if self._started is None:  # the next request's first bytes, not read yet (answers in flight)
                self._started = self._loop.time()
            self.deadline = self._started + READ_TIMEOUT_S
        elif self._queue:
            self.deadline = float("inf")  # the writer answers within STORE_TIMEOUT_S
        else:
            self.deadline = self._loop.time() + IDLE_TIMEOUT_S

    # --- closing
    def expire(self) -> None:
        """Past its deadline: a half-received request is dropped (nothing stored), an idle connection closed."""
        if self._buf or self._need != _NO_BODY:
            log.info(
                "webhook connection from %s closed: request not received within %gs",
                self._remote,
                READ_TIMEOUT_S,
            )
        self.abort()

    def stop(self) -> None:
        """Shutdown: take no more requests; close now unless answers are in flight (closed once written)."""
        self._closing = True
        self._buf.clear()
        if not self._queue and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()
        else:
            self.intake.forget(self)


class LeanSite(web.TCPSite):
    """A TCP listener of an aiohttp runner whose connections start on the lean intake (stopped, like any site, by
    `runner.cleanup()`: the answers in flight are written first)."""

    __slots__ = ("_intake",)

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        settings: Settings,
        writer: EventWriter,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, backlog=backlog)
        self._intake = Intake(settings, writer, runner.server)

    @property
    def intake(self) -> Intake:
        return self._intake

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._intake.protocol, self._host, self._port, backlog=self._backlog
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
        self._intake.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        await self._intake.shutdown()
        await super().stop()
