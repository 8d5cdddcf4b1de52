"""The lean intake's framing of a chunked body: where it ends (extensions and trailers included), when it is not
complete yet, and what is refused (413 past the limit, 400 for an unreadable chunk size)."""

from __future__ import annotations

import pytest

from daemon.http import intake


def test_chunked_end_finds_the_end_of_a_chunked_body() -> None:
    body = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    assert intake.chunked_end(body + b"POST /next", 100) == len(body)
    for cut in (1, 8, 12, 20, len(body) - 1):  # incomplete anywhere: wait for more
        assert intake.chunked_end(body[:cut], 100) is None
    with pytest.raises(intake._Refused) as too_big:
        intake.chunked_end(body, 7)
    assert too_big.value.status == 413
    for bad in (b"0x5\r\nhello\r\n", b"-5\r\n", b"\r\n"):
        with pytest.raises(intake._Refused) as refused:
            intake.chunked_end(bad, 100)
        assert refused.value.status == 400
