"""The wording helpers every program shares: one line of an exception's text, and who the audit log names."""

from __future__ import annotations

import socket

import pytest
from redis.asyncio.sentinel import MasterNotFoundError

from shared.actors import daemon_actor
from shared.text import duration, first_line
from shared.whatsapp import errors


def test_first_line_keeps_the_first_line_cut_to_the_limit() -> None:
    assert first_line(ValueError("  bad row 3\nTraceback: …\n")) == "bad row 3"
    assert first_line(ValueError("x" * 500)) == "x" * 300
    assert first_line(ValueError("x" * 500), limit=200) == "x" * 200


def test_first_line_of_an_exception_without_text() -> None:
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line(TimeoutError("  "), empty="no details") == "no details"
    assert first_line(OSError(), empty="") == ""


def test_first_line_drops_the_sentinel_clients_redis_py_appends() -> None:
    exc = MasterNotFoundError("No master found for 'mymaster' : Sentinel<service=mymaster,...>")
    assert first_line(exc) == "No master found for 'mymaster'"


def test_daemon_actor_names_the_host() -> None:
    assert daemon_actor() == f"daemon@{socket.gethostname()}"
    assert daemon_actor("web-2") == "daemon@web-2"


def test_retry_codes_come_from_the_errors_table() -> None:
    assert {errors.OPT_OUT} == errors.NEVER_RETRY_CODES
    assert errors.ERROR_TABLE[errors.OPT_OUT].opted_out
    assert f"{errors.MARKETING_CAP_RESEND_H} h" in errors.ERROR_TABLE[errors.MARKETING_CAP].fix


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (-3, "0s"),
        (45, "45s"),
        (725, "12m 05s"),
        (3 * 3600 + 20 * 60, "3h 20m"),
        (2 * 86400 + 4 * 3600, "2d 4h"),
    ],
)
def test_one_duration_wording_for_the_console_and_the_services(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown
