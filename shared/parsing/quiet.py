"""Provides quiet hours: the daily window ("21:00-08:00", may cross midnight) in which a recipient's local time
holds its message, and the first moment a message may go out in a zone (DST-safe through zoneinfo)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

__all__ = ["QuietHours", "QuietWait", "parse_quiet_hours", "quiet_wait"]

_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window [start, end) of local wall-clock time; start > end means it crosses midnight."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, wall: time) -> bool:
        """True when the local wall-clock time `wall` is inside the window."""
        wall = wall.replace(second=0, microsecond=0) if wall.second or wall.microsecond else wall
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def release(self, when: datetime, zone: tzinfo) -> datetime:
        """The first moment (UTC) at or after `when` that is outside the window in `zone`."""
        local = when.astimezone(zone)
        if not self.contains(local.time()):
            return when.astimezone(UTC)
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)  # inside the evening part: it opens tomorrow morning
        opens = datetime.combine(day, self.end).replace(tzinfo=zone, fold=0)
        return max(opens.astimezone(UTC), when.astimezone(UTC))

    def next_start(self, when: datetime, zone: tzinfo) -> datetime:
        """The next moment (UTC) after `when` at which the window starts in `zone`."""
        local = when.astimezone(zone)
        for days in range(3):
            start = datetime.combine(local.date() + timedelta(days=days), self.start).replace(tzinfo=zone)
            if start.astimezone(UTC) > when.astimezone(UTC):
                return start.astimezone(UTC)
        raise AssertionError("unreachable: a daily window starts within two days")


def parse_quiet_hours(text: str | None, *, name: str | None = None) -> QuietHours | None:
    """A window written "HH:MM-HH:MM" (None for "off" or an empty value).

    Raises:
        ValueError: one line (naming `name`, the option, and the value when given) with the expected form.
    """
    if text is None or text.strip().lower() in ("", "off", "none"):
        return None
    found = _WINDOW.fullmatch(text)
    reason = None
    if found is None:
        reason = "write a window such as 21:00-08:00, or off"
    else:
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            reason = "hours are 00-23 and minutes 00-59 (such as 21:00-08:00)"
        elif (h1, m1) == (h2, m2):
            reason = "the window starts and ends at the same time"
        else:
            return QuietHours(time(h1, m1), time(h2, m2))
    raise ValueError(f"{name} {text.strip()[:40]!r}: {reason}" if name else reason)


@dataclass(frozen=True, slots=True)
class QuietWait:
    """An estimate: how many recipients will wait for the quiet hours to end, and the first end (in `zone`)."""

    recipients: int
    until: datetime | None
    zone: tzinfo | None

    def line(self) -> str | None:
        """ "about 3,200 recipients will wait until 08:00 WITA" (None when nobody waits)."""
        if not self.recipients or self.until is None or self.zone is None:
            return None
        who = "recipient" if self.recipients == 1 else "recipients"
        return f"about {self.recipients:,} {who} will wait until {self.until.astimezone(self.zone):%H:%M %Z}"


def quiet_wait(
    groups: Sequence[tuple[datetime, str, int]],
    rate: float,
    quiet: QuietHours,
    zone_of: Callable[[str], tzinfo],
) -> QuietWait:
    """Estimate who a blast will hold in quiet hours: its due groups (due time, zone, recipients) sent one after
    the other at `rate` messages a second, earliest first; a group due inside its window waits whole, and a group
    still sending when its zone's window starts leaves the rest waiting until the window ends."""
    cursor: datetime | None = None
    waiting = 0
    first: tuple[datetime, tzinfo] | None = None
    for due, zone, n in sorted(groups):
        tz = zone_of(zone)
        begin = due if cursor is None else max(due, cursor)
        opens = quiet.release(begin, tz)
        if opens > begin:
            late, release = n, opens
        else:
            closes = quiet.next_start(begin, tz)
            sent = min(n, int((closes - begin).total_seconds() * rate))
            late, release = n - sent, quiet.release(closes, tz)
            cursor = begin + timedelta(seconds=sent / rate)
        if late:
            waiting += late
            if first is None or release < first[0]:
                first = (release, tz)
    return QuietWait(waiting, first[0] if first else None, first[1] if first else None)
