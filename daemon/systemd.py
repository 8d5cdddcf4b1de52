"""Provides the daemon's side of systemd's notify protocol (sd_notify) with the stdlib socket module only.

`Type=notify` units set NOTIFY_SOCKET: the daemon says READY=1 once GET /healthz would answer 200, pings
WATCHDOG=1 every half WatchdogSec while its event loop turns, sends RELOADING=1/READY=1 around a SIGHUP reload
and STOPPING=1 as soon as SIGTERM arrives. Without NOTIFY_SOCKET (a terminal, a test, another supervisor) every
call here does nothing, so the daemon runs the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

log = logging.getLogger(__name__)

#: How often readiness is probed before READY=1 is sent.
READY_POLL_S = 0.25
#: Per-probe limit of the local /healthz request.
PROBE_TIMEOUT_S = 2.0


class _HasReasons(Protocol):
    def reasons(self) -> list[str]: ...


def _socket_address() -> str | None:
    """NOTIFY_SOCKET as a connectable address ('@' starts an abstract socket), None when unset."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    return None  # vsock (vsock:…) and other kinds are not used for services


def notify(*lines: str) -> bool:
    """Send `KEY=value` lines to systemd in one datagram.

    Args:
        *lines: e.g. "READY=1", "STATUS=sending blast 42".

    Returns:
        True if a notify socket was set and the datagram was sent; False otherwise (never raises).
    """
    address = _socket_address()
    if address is None or not lines:
        return False
    payload = "\n".join(lines).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError as exc:
        log.debug("sd_notify %s not delivered: %s", lines[0].split("=", 1)[0], exc)
        return False
    return True


def is_enabled() -> bool:
    """True when the process runs under a Type=notify service (NOTIFY_SOCKET is set)."""
    return _socket_address() is not None


def ready(status: str | None = None) -> bool:
    """READY=1 (with a STATUS line): systemd considers the start finished."""
    return notify("READY=1", *((f"STATUS={status}",) if status else ()), f"MAINPID={os.getpid()}")


def stopping(status: str = "stopping: finishing in-flight requests") -> bool:
    """STOPPING=1: the daemon is shutting down (sent from the SIGTERM handler)."""
    return notify("STOPPING=1", f"STATUS={status}")


def reloading(status: str = "reloading Meta credentials") -> bool:
    """RELOADING=1 (with MONOTONIC_USEC, which systemd 253+ wants); follow it with `ready()`."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")


def status(text: str) -> bool:
    """STATUS=…: the line `systemctl status` shows."""
    return notify(f"STATUS={text}")


def watchdog_ping() -> bool:
    """WATCHDOG=1: the daemon is alive."""
    return notify("WATCHDOG=1")


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC in seconds when the watchdog is on for this process, else None."""
    raw = os.environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process (e.g. the daemon's parent wrapper)
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2


async def run_watchdog(stop: asyncio.Event) -> None:
    """Ping WATCHDOG=1 every half WatchdogSec until `stop` (runs only under a watchdog).

    The pings come from the event loop itself: a loop blocked by a stuck call stops them and systemd restarts
    the daemon. A Redis or database outage does not stop them: the daemon rides those out by design.
    """
    interval = watchdog_interval_s()
    if interval is None or not is_enabled():
        return
    log.info("systemd watchdog on: pinging every %.1f s", interval)
    while not stop.is_set():
        watchdog_ping()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def healthz_url(host: str, port: int) -> str:
    """The local URL of GET /healthz for the daemon's BLAST_HTTP_HOST and BLAST_HTTP_PORT."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


async def probe_healthz(url: str, session: aiohttp.ClientSession) -> bool:
    """True when GET /healthz answers 200."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as resp:
            await resp.read()
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def notify_when_ready(
    stop: asyncio.Event,
    is_ready: Callable[[], Awaitable[bool]],
    *,
    status_text: str = "ready",
    poll_s: float = READY_POLL_S,
) -> bool:
    """Send READY=1 once `is_ready()` is true (polled), unless `stop` comes first.

    Args:
        stop: the daemon's stop event.
        is_ready: the readiness probe (the daemon's: GET /healthz answers 200).
        status_text: the STATUS line sent with READY=1.
        poll_s: seconds between probes.

    Returns:
        True if the daemon became ready (READY=1 sent when under systemd), False if it stopped first.
    """
    status("starting: waiting for the database, Redis and the recovery sweep")
    while not stop.is_set():
        if await is_ready():
            ready(status_text)
            log.info("daemon ready%s", " (READY=1 sent to systemd)" if is_enabled() else "")
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
    return False


class HealthzProbe:
    """A readiness probe asking the daemon's own GET /healthz (what systemd and load balancers then agree on).

    Args:
        host: BLAST_HTTP_HOST (a wildcard address is probed on loopback).
        port: BLAST_HTTP_PORT.
    """

    def __init__(self, host: str, port: int) -> None:
        self.url = healthz_url(host, port)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await probe_healthz(self.url, self._session)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ReadinessProbe:
    """The readiness probe when the HTTP server is off (BLAST_HTTP_PORT=0): the daemon's start-up milestones.

    Args:
        readiness: an object whose `reasons()` lists what is not ready yet (daemon.http.health.Readiness).
    """

    def __init__(self, readiness: _HasReasons) -> None:
        self.readiness = readiness

    async def __call__(self) -> bool:
        return not self.readiness.reasons()

    async def close(self) -> None:
        return None


async def supervise(
    stop: asyncio.Event,
    is_ready: HealthzProbe | ReadinessProbe,
    *,
    status_text: str = "ready",
) -> None:
    """The daemon's systemd task: READY=1 once `is_ready()` holds, and the watchdog pings until `stop`.

    Args:
        stop: the daemon's stop event (SIGTERM).
        is_ready: the probe; it is closed once READY=1 is sent or the daemon stops.
        status_text: the STATUS line sent with READY=1.
    """

    async def ready_then_close() -> None:
        try:
            await notify_when_ready(stop, is_ready, status_text=status_text)
        finally:
            await is_ready.close()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_watchdog(stop), name="systemd-watchdog")
        tg.create_task(ready_then_close(), name="systemd-ready")
