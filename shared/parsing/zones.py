"""Provides recipients' time zones: reading a zone as a CSV writes it, guessing it from the number, and the
moment a wall-clock time happens in it (local-time blasts)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from shared.parsing.phones import canonical_e164_type
from shared.parsing.quiet import QuietHours

__all__ = ["ZoneResolver", "due_at", "parse_zone", "zone_of"]

#: Indonesia's three zones by the names people use.
ALIASES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
_OFFSET = re.compile(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_ZONE_CHARS = re.compile(r"[A-Za-z0-9_+\-/]+")


def parse_zone(text: str) -> str:
    """The canonical name of a zone as written in a CSV or an option.

    Accepted: IANA names ("Asia/Makassar"), WIB / WITA / WIT, and UTC offsets ("+08:00", "UTC+8", "-0530").

    Returns:
        An IANA name, or a fixed offset written "+HH:MM".

    Raises:
        ValueError: a short reason fit for a rejected-row report.
    """
    value = text.strip()
    alias = ALIASES.get(value.upper())
    if alias is not None:
        return alias
    found = _OFFSET.fullmatch(value)
    if found is not None:
        sign, hours, minutes = found[1], int(found[2]), int(found[3] or 0)
        if hours > 14 or minutes > 59 or (hours == 14 and minutes):
            raise ValueError(f"UTC offset {value!r} is out of range (-14:00 to +14:00)")
        return f"{sign}{hours:02d}:{minutes:02d}"
    if value.upper() in ("UTC", "Z", "GMT"):
        return "UTC"
    if not value or not _ZONE_CHARS.fullmatch(value) or ".." in value:
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Asia/Makassar, WIB/WITA/WIT or +08:00)"
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Asia/Makassar, WIB/WITA/WIT or +08:00)"
        ) from None
    return value


def zone_of(name: str) -> tzinfo:
    """The tzinfo of a name returned by `parse_zone`."""
    if name[:1] in "+-" and len(name) == 6:
        delta = timedelta(hours=int(name[1:3]), minutes=int(name[4:6]))
        return timezone(-delta if name[0] == "-" else delta)
    return ZoneInfo(name)


def due_at(wall: datetime, zone: tzinfo) -> datetime:
    """The moment (UTC) the naive wall-clock time `wall` happens in `zone`.

    A time that occurs twice that day (clocks set back) means the first occurrence; one that never occurs
    (clocks set forward) is moved on by the gap (02:30 on the day Berlin skips 02:00-03:00 is 03:30 CEST).
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def phone_zones(phone: str) -> tuple[str, ...]:
    """The zones phonenumbers gives for an E.164 number (often several, or the unknown marker)."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in pn_timezone.time_zones_for_number(number) if z != pn_timezone.UNKNOWN_TIMEZONE)


def _single(zones: tuple[str, ...]) -> str | None:
    """The zone when `zones` (phonenumbers' answer, the unknown marker left out) names exactly one."""
    named = [z for z in zones if z != pn_timezone.UNKNOWN_TIMEZONE]
    return named[0] if len(named) == 1 else None


#: Most distinct prefixes `_prefix_zones` remembers (it starts afresh when full).
PREFIX_CACHE_SIZE = 65_536
_prefixes: dict[str, tuple[str | None, str | None, bool]] = {}


def _prefix_zones(digits: str) -> tuple[str | None, str | None, bool]:
    """For the valid numbers whose E.164 digits start with `digits` (their first TIMEZONE_LONGEST_PREFIX
    digits, or all of a shorter number): the single zone (None: not exactly one) phonenumbers gives such a
    number when its type is geographical, the one it gives otherwise, and whether a mobile number's type is
    geographical in its country.

    phonenumbers' `time_zones_for_number` of a valid number is the zones of the longest prefix of its E.164
    digits (at most TIMEZONE_LONGEST_PREFIX long) in TIMEZONE_DATA when its type is geographical (fixed line,
    or mobile in a few countries), else its country code's zones. Both depend on these digits alone; the
    type, which needs the whole number, comes from `canonical_e164_type`.
    """
    zones = _prefixes.get(digits)
    if zones is not None:
        return zones
    geographical: tuple[str, ...] = ()
    for size in range(TIMEZONE_LONGEST_PREFIX, 0, -1):
        found = TIMEZONE_DATA.get(digits[:size])
        if found is not None:
            geographical = tuple(found)
            break
    # parse() reads a "+<digits>" number's country code the same way (0: none known).
    code, _ = phonenumbers.phonenumberutil._extract_country_code(digits)
    country: tuple[str, ...] = ()
    if code:
        number = phonenumbers.PhoneNumber(country_code=code, national_number=0)
        country = tuple(pn_timezone._country_level_time_zones_for_number(number))
    mobile_geographical = phonenumbers.is_number_type_geographical(phonenumbers.PhoneNumberType.MOBILE, code)
    zones = (_single(geographical), _single(country), mobile_geographical)
    if len(_prefixes) >= PREFIX_CACHE_SIZE:
        _prefixes.clear()
    _prefixes[digits] = zones
    return zones


class ZoneResolver:
    """The zone of each recipient of a blast: the CSV's `timezone` cell if any; else phonenumbers' zone when it
    names exactly one; else the blast's zone. Caches what it computed (a file has few distinct zones)."""

    def __init__(
        self,
        wall: datetime | None,
        default_zone: str,
        *,
        send_at: datetime | None = None,
        quiet: QuietHours | None = None,
    ) -> None:
        """Args:
        wall: the naive wall-clock send time of a local-time blast (None: zones only, no due times).
        default_zone: the blast's zone (a `parse_zone` name).
        send_at: the send time of a blast that is not local-time (with `quiet`: each zone's due time is its
            first moment from then on outside the quiet hours).
        quiet: quiet hours: a due time inside them is moved to their end in the recipient's zone.
        """
        self.wall = wall
        self.default_zone = default_zone
        self.send_at = send_at
        self.quiet = quiet
        self._cells: dict[str, str | ValueError] = {}
        self._due: dict[str, datetime] = {}

    def resolve(self, phone: str, cell: str | None) -> str:
        """The zone name of one recipient.

        Raises:
            ValueError: the cell names no zone (a short reason).
        """
        if cell is not None and cell.strip():
            known = self._cells.get(cell)
            if known is None:
                try:
                    known = parse_zone(cell)
                except ValueError as exc:
                    known = exc
                self._cells[cell] = known
            if isinstance(known, ValueError):
                raise known
            return known
        return self.number_zone(phone)

    def number_zone(self, phone: str) -> str:
        """The zone of a recipient without a `timezone` cell: phonenumbers' zone when it names exactly one,
        else the blast's."""
        kind = canonical_e164_type(phone)
        if kind is not None:
            geographical, country, mobile_geographical = _prefix_zones(phone[1 : 1 + TIMEZONE_LONGEST_PREFIX])
            if kind == "fixed_line" or (kind == "mobile" and mobile_geographical):
                return geographical or self.default_zone
            return country or self.default_zone
        zones = phone_zones(phone)
        return zones[0] if len(zones) == 1 else self.default_zone

    def due(self, zone: str) -> datetime | None:
        """When this zone's recipients are due: the blast's wall-clock time in this zone (local-time blasts) or
        its send time, moved past the quiet hours if any (None for a blast with neither)."""
        if self.wall is None and (self.quiet is None or self.send_at is None):
            return None
        when = self._due.get(zone)
        if when is None:
            tz = zone_of(zone)
            when = due_at(self.wall, tz) if self.wall is not None else self.send_at
            assert when is not None
            if self.quiet is not None:
                when = self.quiet.release(when, tz)
            self._due[zone] = when
        return when

    def intended(self, zone: str) -> datetime | None:
        """When this zone's recipients would be due without quiet hours: the blast's wall-clock time in this
        zone (local-time blasts) or its send time (None for a blast with neither). The quiet-hours estimate
        starts from it, so recipients held from the start count as waiting too."""
        if self.wall is not None:
            return due_at(self.wall, zone_of(zone))
        return self.send_at

    def due_times(self) -> list[datetime]:
        """The distinct due times computed so far, earliest first."""
        return sorted(set(self._due.values()))
