"""Tests parse_when, require_future and format_local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.errors import ValidationFailed
from shared.parsing.send_at import format_local, parse_when, require_future

JAKARTA = ZoneInfo("Asia/Jakarta")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
HINT = "use ISO 8601 such as 2026-12-01T09:00 (Asia/Jakarta) or +10m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T09:00:00+07:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("2026-12-01T09:00+07:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("2026-12-01T09:00:00-0500", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),
        ("2026-12-01T09:00+07", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01t09:00z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01 09:00 +07:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("2026-12-01T09:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("2026-12-01 09:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
        ("  2026-12-01 09:00:30  ", datetime(2026, 12, 1, 2, 0, 30, tzinfo=UTC)),
        ("2026-12-01T09:00:30.250", datetime(2026, 12, 1, 2, 0, 30, 250000, tzinfo=UTC)),
        ("now", NOW),
        ("NOW", NOW),
        ("+30s", NOW + timedelta(seconds=30)),
        ("+10m", NOW + timedelta(minutes=10)),
        ("+2h", NOW + timedelta(hours=2)),
        ("+1d", NOW + timedelta(days=1)),
        ("+1h30m", NOW + timedelta(minutes=90)),
        ("+ 5 M", NOW + timedelta(minutes=5)),
    ],
)
def test_reads_accepted_forms(text: str, expected: datetime) -> None:
    got = parse_when(text, zone=JAKARTA, now=NOW)
    assert got == expected
    assert got.tzinfo is UTC


def test_now_may_be_given_in_any_zone() -> None:
    local_now = NOW.astimezone(JAKARTA)
    assert parse_when("+10m", zone=JAKARTA, now=local_now) == NOW + timedelta(minutes=10)
    assert parse_when("now", zone=JAKARTA, now=local_now).tzinfo is UTC


def test_naive_time_uses_the_zone() -> None:
    assert parse_when("2026-07-01 09:00", zone=NEW_YORK, now=NOW) == datetime(2026, 7, 1, 13, 0, tzinfo=UTC)
    assert parse_when("2026-12-01 09:00", zone=NEW_YORK, now=NOW) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_nonexistent_local_time_is_an_error_naming_it() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when("2026-03-08 02:30", zone=NEW_YORK, now=NOW)
    assert str(caught.value) == (
        "send time 2026-03-08 02:30 does not exist in America/New_York "
        "(the clocks skip it that day); pick another time"
    )


def test_ambiguous_local_time_means_the_first_occurrence() -> None:
    got = parse_when("2026-11-01 01:30", zone=NEW_YORK, now=NOW)
    assert got == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not 01:30 EST
    # An explicit offset still picks the second one.
    assert parse_when("2026-11-01 01:30-05:00", zone=NEW_YORK, now=NOW) == datetime(
        2026, 11, 1, 6, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tomorrow",
            f"cannot read send time 'tomorrow': {HINT}",
        ),
        ("", f"cannot read send time '': {HINT}"),
        ("+10", f"cannot read send time '+10': {HINT}"),
        (
            "-10m",
            f"cannot read send time '-10m': {HINT}",
        ),
        (
            "01/12/2026 09:00",
            f"cannot read send time '01/12/2026 09:00': {HINT}",
        ),
        ("2026-12-01", "send time '2026-12-01' has no time of day: write e.g. 2026-12-01T09:00"),
        ("2026-13-01T09:00", "cannot read send time '2026-13-01T09:00': month must be in 1..12"),
        ("2026-02-30 09:00", "cannot read send time '2026-02-30 09:00': day is out of range for month"),
        ("2026-12-01T24:00", "cannot read send time '2026-12-01T24:00': hour must be in 0..23"),
        (
            "2026-12-01T09:00+25:00",
            "cannot read send time '2026-12-01T09:00+25:00': offset +25:00 is out of range",
        ),
        ("9999-12-31T23:59", "send time '9999-12-31T23:59' is out of range"),
        ("0001-01-01T00:00", "send time '0001-01-01T00:00' is out of range"),
        ("+99999999d", "send time '+99999999d' is more than 3660 days away"),
    ],
)
def test_refuses_with_one_line_naming_the_value(text: str, message: str) -> None:
    zone = NEW_YORK if text.startswith("9999") else JAKARTA
    with pytest.raises(ValidationFailed) as caught:
        parse_when(text, zone=zone, now=NOW)
    assert str(caught.value) == message


def test_long_or_multiline_junk_stays_on_one_line() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when("next\nmonday " + "x" * 100, zone=JAKARTA, now=NOW)
    assert "\n" not in str(caught.value)
    assert "..." in str(caught.value)


def test_require_future() -> None:
    require_future(NOW + timedelta(seconds=1), now=NOW)
    require_future(NOW - timedelta(milliseconds=900), now=NOW)  # "now" typed a moment ago
    with pytest.raises(ValidationFailed) as caught:
        require_future(datetime(2026, 1, 1, 2, 0, tzinfo=UTC), now=NOW, zone=JAKARTA)
    assert str(caught.value) == (
        "--send-at: send time 2026-01-01 09:00 WIB is in the past (now 2026-05-01 10:00 WIB)"
    )
    with pytest.raises(ValidationFailed, match=r"^send time 2026-01-01 02:00 UTC is in the past"):
        require_future(datetime(2026, 1, 1, 2, 0, tzinfo=UTC), now=NOW, field="")


def test_format_local() -> None:
    assert format_local(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), JAKARTA) == "2026-12-01 09:00 WIB"
    assert format_local(datetime(2026, 12, 1, 2, 0, 30, tzinfo=UTC), JAKARTA) == "2026-12-01 09:00:30 WIB"
    assert format_local(datetime(2026, 7, 1, 13, 0, tzinfo=UTC), NEW_YORK) == "2026-07-01 09:00 EDT"
    assert format_local(datetime(2026, 7, 1, 13, 0), UTC) == "2026-07-01 13:00 UTC"  # naive means UTC
