"""The daemon run the way its systemd unit runs it: env files through BLAST_ENV_FILE and a NOTIFY_SOCKET bound by
the test. READY=1 comes only once /healthz answers 200, the watchdog pings, SIGHUP reloads (RELOADING=1, then
READY=1 again), and SIGTERM brings STOPPING=1 and a clean exit."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from tests.conftest import TEST_REDIS_URL, free_port, reset_database
from tests.ops.helpers import NotifySocket, clean_env, daemon_command, running, write_env_files

#: Seconds the daemon may take to start (migrations on a fresh database included) and to stop.
START_S = 40.0
STOP_S = 30.0
APP_SECRET = "ops-test-app-secret-1c9f"


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_ready_after_health_watchdog_reload_and_stopping_on_sigterm(
    settings: Settings, notify_socket: NotifySocket, tmp_path: Path
) -> None:
    reset_database(settings)
    port = free_port()
    env_file = write_env_files(
        tmp_path,
        {
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": TEST_REDIS_URL,
            "BLAST_REDIS_PREFIX": settings.BLAST_REDIS_PREFIX,
            "BLAST_TIMEZONE": "Asia/Jakarta",
            "WHATSAPP_PROVIDER": "sandbox",
            "BLAST_HTTP_PORT": str(port),
            "WHATSAPP_SANDBOX_DIR": str(tmp_path),
        },
        {"WHATSAPP_APP_SECRET": APP_SECRET, "WHATSAPP_VERIFY_TOKEN": "ops-verify"},
    )
    env = clean_env(env_file, NOTIFY_SOCKET=notify_socket.path, WATCHDOG_USEC="2000000")
    log_path = tmp_path / "daemon.log"
    with running(daemon_command(), env, log_path) as proc:
        started = time.monotonic()
        assert notify_socket.wait_for("READY", timeout_s=START_S, proc=proc), log_path.read_text()
        # READY=1 means /healthz answers 200 now, not "soon".
        assert _healthz(port) == 200
        ready = next(m for m in notify_socket.messages if m.get("READY") == "1")
        assert ready.get("STATUS", "").startswith("ready: sandbox")
        assert ready.get("MAINPID") == str(proc.pid)
        assert any("STATUS" in m and "READY" not in m for m in notify_socket.messages)  # progress first
        # WatchdogSec=2 -> a ping every second from the event loop.
        assert notify_socket.wait_for("WATCHDOG", timeout_s=5, proc=proc)

        # systemctl reload: RELOADING=1, then READY=1 again; the daemon keeps serving.
        notify_socket.drain()
        notify_socket.messages.clear()
        proc.send_signal(signal.SIGHUP)
        assert notify_socket.wait_for("RELOADING", timeout_s=10, proc=proc)
        assert notify_socket.wait_for("READY", timeout_s=10, proc=proc)
        assert proc.poll() is None and _healthz(port) == 200

        notify_socket.messages.clear()
        proc.send_signal(signal.SIGTERM)
        assert notify_socket.wait_for("STOPPING", timeout_s=10, proc=proc), log_path.read_text()
        try:
            code = proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {STOP_S:g} s of SIGTERM:\n{log_path.read_text()}")
        assert code == 0, log_path.read_text()
        assert time.monotonic() - started < START_S + STOP_S + 20
    output = log_path.read_text()
    assert "SANDBOX" in output
    assert APP_SECRET not in output  # secrets are never logged
