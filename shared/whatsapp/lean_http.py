"""Provides the send path's HTTP/1.1 client: keep-alive connections to one origin for small JSON POSTs, responses
parsed by httptools (the C parser uvicorn uses), TLS by the standard library.

Why not aiohttp here: one aiohttp request costs about 80-100 µs of CPU on the 2-core reference machine (request
and response objects, header multidicts, timers, payload registry), which is a third of the budget of a message
at 1,000 msg/s (ARCHITECTURE 5a). A send needs none of that: the request is a prebuilt head plus a body, the
answer a status, a few headers and a short body. This client does only that, for about a quarter of the cost;
every other call to Meta (templates, the number's standing) still goes through aiohttp, and BLAST_SEND_CLIENT=
aiohttp puts sends back on it.

Outcomes are classified as aiohttp's are: an error before the request was written (connect refused, DNS, TLS,
connect timeout) raises NotSent; a connection lost or a read timeout after it was written raises MaybeSent (the
caller marks the recipient UNKNOWN and never re-sends it silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from typing import cast

import httptools
from yarl import URL

#: An idle connection older than this is closed instead of reused (servers drop idle keep-alive connections;
#: a request written onto one being closed would have an unknown outcome).
IDLE_S = 15.0


class NotSent(Exception):
    """The request certainly did not leave (no connection could be made)."""


class MaybeSent(Exception):
    """The request was written, but no complete answer came (it may have reached the server)."""


class _Conn(asyncio.Protocol):
    """One keep-alive connection: one request at a time."""

    __slots__ = (
        "_body",
        "_done",
        "_headers",
        "_keep",
        "_parser",
        "_status",
        "closed",
        "idle_since",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._done: asyncio.Future[tuple[int, bytes, dict[str, str]]] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._keep = True

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(MaybeSent(f"unreadable answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._fail(MaybeSent(f"connection lost before the answer ({exc or 'closed by the server'})"))

    # --- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep = self._parser.should_keep_alive()
        done = self._done
        if done is not None and not done.done():
            done.set_result((self._status, b"".join(self._body), self._headers))

    # --- requests
    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes, dict[str, str]]]:
        assert self.transport is not None
        self._headers = {}
        self._body = []
        self._done = done = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return done

    def _fail(self, exc: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    @property
    def reusable(self) -> bool:
        return self._keep and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """Keep-alive HTTP/1.1 POSTs to one origin (scheme, host, port of `base_url`).

    Args:
        base_url: the origin and base path, e.g. https://graph.facebook.com/v24.0.
        limit: most connections open at once (a request waits for one beyond that).
        connect_timeout_s: limit on making a connection (TLS handshake included).
        read_timeout_s: limit on the whole answer after the request was written.
        ssl_context: for https (default: the system's trust store, certificates verified).
    """

    def __init__(
        self,
        base_url: str | URL,
        *,
        limit: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = url.host
        self.port = url.explicit_port or (443 if url.scheme == "https" else 80)
        self.ssl = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        default_port = self.port == (443 if url.scheme == "https" else 80)
        self.host_header = url.host if default_port else f"{url.host}:{self.port}"
        self.limit = max(1, limit)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: deque[_Conn] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def head(self, path: str, headers: dict[str, str]) -> bytes:
        """The request head of a POST to `path` up to its Content-Length value (call once, reuse)."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """POST `body` with a head from `head()`; returns (HTTP status, body, lower-cased headers).

        Raises:
            NotSent: no connection could be made.
            MaybeSent: the request was written but no complete answer came in time.
        """
        conn = await self._acquire()
        loop = asyncio.get_running_loop()
        done = conn.request(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        timer = loop.call_later(self.read_timeout_s, _expire, done, self.read_timeout_s)
        try:
            answer = await done
        except BaseException:
            conn.close()
            self._release(conn)
            raise
        finally:
            timer.cancel()
        self._release(conn)
        return answer

    async def _acquire(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the likeliest to be alive
            if conn.closed or now - conn.idle_since > IDLE_S:
                conn.close()
                self._open -= 1
                continue
            return conn
        while self._open >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if self._idle:
                return await self._acquire()
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(self) -> _Conn:
        if self._closed:
            raise NotSent("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    _Conn,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError as exc:
            raise NotSent(f"no connection to {self.host_header} within {self.connect_timeout_s:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise NotSent(f"cannot connect to {self.host_header}: {type(exc).__name__}: {exc}") from exc
        return conn

    def _release(self, conn: _Conn) -> None:
        if conn.reusable and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
            self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every idle connection (requests in flight finish on theirs, which then close)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
            self._open -= 1


def _expire(done: asyncio.Future[tuple[int, bytes, dict[str, str]]], after_s: float) -> None:
    if not done.done():
        done.set_exception(MaybeSent(f"no answer within {after_s:g} s"))
