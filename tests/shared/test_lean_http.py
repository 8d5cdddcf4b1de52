"""The send path's lean HTTP client: keep-alive reuse, answers it must read (chunked, Connection: close), servers
that drop idle connections, timeouts classified by whether the request left, and TLS with verified certificates."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest

from shared.whatsapp.lean_http import LeanClient, MaybeSent, NotSent

OK = b'{"messages":[{"id":"wamid.1"}]}'


class _Server(asyncio.Protocol):
    """A raw HTTP/1.1 server: answers each request (head and Content-Length body) with `reply(n)`."""

    def __init__(self, reply: Callable[[int], bytes | None], seen: list[bytes], conns: list[int]) -> None:
        self.reply, self.seen, self.conns = reply, seen, conns
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self.conns.append(1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            if len(rest) < length:
                return
            self.seen.append(rest[:length])
            self.buf = rest[length:]
            answer = self.reply(len(self.seen))
            if answer is None:  # hang
                return
            self.transport.write(answer)
            if b"Connection: close" in answer:
                self.transport.close()


@contextlib.asynccontextmanager
async def server(
    reply: Callable[[int], bytes | None], *, ssl_ctx: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, list[bytes], list[int]]]:
    seen: list[bytes] = []
    conns: list[int] = []
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Server(reply, seen, conns), "127.0.0.1", 0, ssl=ssl_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, seen, conns
    finally:
        srv.close()


def ok(extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        extra,
        len(OK),
        OK,
    )


def client(port: int, **kw: object) -> LeanClient:
    options: dict[str, object] = {"limit": 4, "connect_timeout_s": 1.0, "read_timeout_s": 1.0}
    options.update(kw)
    scheme = "https" if "ssl_context" in kw else "http"
    return LeanClient(f"{scheme}://127.0.0.1:{port}/v24.0", **options)  # type: ignore[arg-type]


async def test_keep_alive_reuses_one_connection_and_sends_the_body() -> None:
    async with server(lambda n: ok()) as (port, seen, conns):
        c = client(port)
        head = c.head("/v24.0/1/messages", {"Authorization": "Bearer t", "Content-Type": "application/json"})
        for i in range(5):
            status, body, headers = await c.post(head, b'{"to":"%d"}' % i)
            assert (status, body, headers["content-type"]) == (200, OK, "application/json")
        await c.close()
    assert seen == [b'{"to":"%d"}' % i for i in range(5)]
    assert len(conns) == 1


async def test_chunked_answers_and_connection_close_are_read() -> None:
    chunked = b'HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'

    def reply(n: int) -> bytes:
        return chunked if n == 1 else ok(b"Connection: close\r\n")

    async with server(reply) as (port, _, conns):
        c = client(port)
        head = c.head("/v24.0/1/messages", {})
        assert await c.post(head, b"{}") == (
            400,
            b'{"a":1}',
            {"transfer-encoding": "chunked", "retry-after": "3"},
        )
        status, _, _ = await c.post(head, b"{}")  # the same connection; then the server closes it
        assert status == 200
        status, _, _ = await c.post(head, b"{}")  # a new connection, no error
        assert status == 200
        await c.close()
    assert len(conns) == 2


async def test_an_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async with server(lambda n: ok()) as (port, _, conns):
        c = client(port)
        head = c.head("/", {})
        await c.post(head, b"{}")
        # the idle connection goes away (the server's keep-alive timeout): connection_lost marks it closed
        (idle,) = c._idle
        assert idle.transport is not None
        idle.transport.close()
        await asyncio.sleep(0.05)
        status, _, _ = await c.post(head, b"{}")
        assert status == 200
        await c.close()
    assert len(conns) == 2


async def test_no_answer_in_time_is_maybe_sent_and_refused_is_not_sent() -> None:
    async with server(lambda n: None) as (port, seen, _):
        c = client(port, read_timeout_s=0.2)
        with pytest.raises(MaybeSent, match=r"no answer within 0\.2 s"):
            await c.post(c.head("/", {}), b"{}")
        await c.close()
    assert seen == [b"{}"]  # it did leave
    c = client(port)  # the server is gone
    with pytest.raises(NotSent, match="ConnectionRefusedError"):
        await c.post(c.head("/", {}), b"{}")


async def test_an_answer_cut_short_is_maybe_sent() -> None:
    def reply(n: int) -> bytes:
        # the server promises 100 bytes, sends 7 and closes: the request was read, the outcome is unknown
        return b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{"trunc'

    async with server(reply) as (port, seen, _):
        c = client(port)
        with pytest.raises(MaybeSent, match="connection lost before the answer"):
            await c.post(c.head("/", {}), b"{}")
        await c.close()
    assert seen == [b"{}"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl)."""
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_verifies_the_certificate(certs: tuple[Path, Path]) -> None:
    cert, key = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with server(lambda n: ok(), ssl_ctx=server_ctx) as (port, seen, _):
        trusting = ssl.create_default_context(cafile=str(cert))
        c = client(port, ssl_context=trusting)
        assert (await c.post(c.head("/", {}), b"{}"))[0] == 200
        await c.close()
        untrusted = client(port, ssl_context=ssl.create_default_context())
        with pytest.raises(NotSent, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.post(untrusted.head("/", {}), b"{}")
    assert seen == [b"{}"]


def test_works_on_uvloop() -> None:
    """The daemon runs on uvloop, whose transports are not asyncio.Transport subclasses."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        async with server(lambda n: ok()) as (port, _, _):
            c = client(port)
            status, _, _ = await c.post(c.head("/", {}), b"{}")
            status2, _, _ = await c.post(c.head("/", {}), b"{}")
            await c.close()
            return status + status2

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == 400
