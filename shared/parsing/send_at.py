"""Provides reading and showing send times: ISO 8601, local wall-clock times, "now" and "+10m"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from shared.errors import ValidationFailed

__all__ = ["format_local", "parse_when", "require_future"]

#: Date and time (minutes at least), 'T' or spaces between them, an optional offset or Z.
_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?:T|\s+)(?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,6}))?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_RELATIVE = re.compile(r"\+(?:\s*\d+\s*[smhd])+", re.IGNORECASE)
_RELATIVE_PART = re.compile(r"(\d+)\s*([smhd])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: A relative time further out than this is surely a typo (and would overflow datetime sooner or later).
_MAX_RELATIVE = timedelta(days=3660)
_PAST_TOLERANCE = timedelta(seconds=1)


def parse_when(text: str, *, zone: ZoneInfo, now: datetime) -> datetime:
    """Read a send time as an operator types it.

    Accepted: ISO 8601 with an offset or Z ("2026-12-01T09:00:00+07:00"); a date and time without an
    offset ("2026-12-01 09:00"), read as wall-clock time in `zone`; "now"; and a delay from `now` such as
    "+30s", "+10m", "+2h", "+1d" or "+1h30m". A wall-clock time that occurs twice (clocks set back)
    means the first occurrence; one that never occurs (clocks set forward) is an error.

    Args:
        text: what the operator typed.
        zone: the zone of times typed without an offset (BLAST_TIMEZONE).
        now: the current time, tz-aware (a naive value is taken as UTC).

    Returns:
        The moment, tz-aware in UTC.

    Raises:
        ValidationFailed: one line naming the value and what is accepted.
    """
    value = text.strip()
    now_utc = _as_utc(now)
    if value.lower() == "now":
        return now_utc
    if _RELATIVE.fullmatch(value):
        return _relative(value, text, now_utc)
    found = _ISO.fullmatch(value)
    if found is None and _DATE_ONLY.fullmatch(value):
        raise ValidationFailed(f"send time {_shown(text)} has no time of day: write e.g. {value}T09:00")
    if found is None:
        hint = f"use ISO 8601 such as 2026-12-01T09:00 ({_zone_name(zone)}) or +10m"
        raise ValidationFailed(f"cannot read send time {_shown(text)}: {hint}")
    try:
        fraction = found["f"] or ""
        naive = datetime(
            int(found["y"]),
            int(found["mo"]),
            int(found["d"]),
            int(found["h"]),
            int(found["mi"]),
            int(found["s"] or 0),
            int(fraction.ljust(6, "0")) if fraction else 0,
        )
        offset = _offset(found["tz"])
    except ValueError as exc:
        raise ValidationFailed(f"cannot read send time {_shown(text)}: {exc}") from None
    try:
        if offset is not None:
            return naive.replace(tzinfo=offset).astimezone(UTC)
        return _from_wall_clock(naive, zone, text)
    except OverflowError:
        raise ValidationFailed(f"send time {_shown(text)} is out of range") from None


def require_future(
    when: datetime, *, now: datetime, field: str = "--send-at", zone: ZoneInfo | None = None
) -> None:
    """Refuse a send time in the past (a second of slack allows "now").

    Args:
        when: the parsed send time, tz-aware.
        now: the current time, tz-aware.
        field: the option or field the time came from, named at the start of the message ("" for none).
        zone: the zone to show times in (UTC if omitted).

    Raises:
        ValidationFailed: e.g. "--send-at: send time 2026-01-01 09:00 WIB is in the past
            (now 2026-05-01 10:00 WIB)", on one line.
    """
    if _as_utc(when) < _as_utc(now) - _PAST_TOLERANCE:
        shown = zone if zone is not None else UTC
        prefix = f"{field}: " if field else ""
        raise ValidationFailed(
            f"{prefix}send time {format_local(when, shown)} is in the past (now {format_local(now, shown)})"
        )


def format_local(dt: datetime, zone: tzinfo) -> str:
    """Show a moment as wall-clock time in a zone.

    Args:
        dt: the moment, tz-aware (a naive value is taken as UTC).
        zone: the zone to show it in.

    Returns:
        e.g. "2026-12-01 09:00 WIB", with seconds only when they are not zero ("2026-12-01 09:00:30 WIB").
    """
    local = _as_utc(dt).astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
    name = local.tzname() or local.strftime("%z")
    return f"{text} {name}"


def _as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _relative(value: str, text: str, now_utc: datetime) -> datetime:
    seconds = sum(int(n) * _UNIT_SECONDS[unit.lower()] for n, unit in _RELATIVE_PART.findall(value))
    if seconds > _MAX_RELATIVE.total_seconds():
        raise ValidationFailed(f"send time {_shown(text)} is more than {_MAX_RELATIVE.days} days away")
    return now_utc + timedelta(seconds=seconds)


def _offset(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _from_wall_clock(naive: datetime, zone: ZoneInfo, text: str) -> datetime:
    # fold=0 picks the first of two equal wall-clock times; a time in a gap does not survive the round trip.
    moment = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) != naive:
        raise ValidationFailed(
            f"send time {naive:%Y-%m-%d %H:%M} does not exist in {_zone_name(zone)} "
            "(the clocks skip it that day); pick another time"
        )
    return moment


def _zone_name(zone: ZoneInfo) -> str:
    return zone.key or str(zone)


def _shown(text: str) -> str:
    """The value as typed, quoted on one line and cut short if long."""
    text = text.strip()
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)
