"""Provides the create form's look at a recipients file before anything is written: the first rows rendered
into the template, the rejected rows with their reasons, the counts, and who quiet hours would hold. Parsing
runs in a thread, off the UI loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from shared.clock import utcnow
from shared.config import Settings
from shared.models import Suppression
from shared.parsing.csv_rows import AcceptedRow, RecipientCsv, RejectedRow
from shared.parsing.template_params import render_preview
from shared.parsing.zones import ZoneResolver
from shared.services.blast_import import ZONE_COLUMN, Rejected, open_csv
from shared.services.blasts import approved_template, quiet_note, send_plan

#: Rejected rows listed in a preview (the count is exact).
MAX_REJECTED_SHOWN = 50


@dataclass(frozen=True, slots=True)
class RenderedRow:
    row: int
    phone: str
    text: str


@dataclass(frozen=True, slots=True)
class CsvPreview:
    rendered: list[RenderedRow]
    rejected: list[Rejected]
    accepted: int
    rejected_total: int
    #: Numbers that appear more than once (the later rows are rejected on create).
    duplicates: int
    #: Accepted numbers on the suppression list (imported, then skipped when sent).
    suppressed: int = 0
    #: The template's category (MARKETING, UTILITY, AUTHENTICATION).
    category: str = "UTILITY"
    #: The first PREFIX_DIGITS digits of the accepted, unsuppressed numbers -> count (to find their markets).
    prefixes: dict[str, int] = field(default_factory=dict)
    #: Accepted numbers per zone, found as create finds them ("": not known, the blast's zone), for quiet hours
    #: (None: not looked up: a zone without a `timezone` cell costs about 12 µs a number, so only when asked).
    zones: dict[str, int] | None = None


#: Digits of a number kept for its market (the longest calling-code prefix of a rate card is shorter).
PREFIX_DIGITS = 6


async def preview_csv(
    *,
    settings: Settings,
    template: str,
    language: str,
    path: str | Path,
    rows: int = 3,
    with_zones: bool = False,
) -> CsvPreview:
    """Read a recipients file against an APPROVED template without writing anything; with `with_zones`, or
    when the file has a `timezone` column, also each recipient's zone (a bad `timezone` cell rejects its row,
    as create does).

    Raises:
        ValidationFailed: the template is unknown or not APPROVED.
        CsvError: the file cannot be used (missing, no phone column, a parameter column missing …).
    """
    tmpl = await approved_template(template, language)
    csv = await asyncio.to_thread(open_csv, path, tmpl, {}, settings)
    components = list(tmpl.components or [])
    phones: list[str] = await Suppression.all().values_list("phone", flat=True)  # type: ignore[assignment]  # flat: one column
    suppressed = frozenset(phones)
    zoned = with_zones or ZONE_COLUMN in csv.columns
    result = await asyncio.to_thread(_scan, csv, components, rows, suppressed, zoned)
    return CsvPreview(
        rendered=result.rendered,
        rejected=result.rejected,
        accepted=result.accepted,
        rejected_total=result.rejected_total,
        duplicates=result.duplicates,
        suppressed=result.suppressed,
        category=tmpl.category,
        prefixes=result.prefixes,
        zones=result.zones,
    )


def quiet_estimate(
    preview: CsvPreview,
    settings: Settings,
    *,
    send_at: str | None,
    local_time: bool = False,
    timezone: str | None = None,
    quiet_hours: str | None = None,
) -> str | None:
    """What create would say of a previewed file sent with these options: "about 3,200 recipients will wait
    until 08:00 WITA" (None when nobody is expected to wait or there are no quiet hours); the estimate of
    `create_blast` (`blasts.quiet_note` over the same due times).

    Raises:
        ValidationFailed: an option is wrong (one line naming it, as create says it).
    """
    plan = send_plan(
        settings, send_at=send_at, local_time=local_time, timezone=timezone, quiet_hours=quiet_hours
    )
    if plan.quiet is None or not preview.zones:
        return None  # zones not looked up: read the file again `with_zones`
    start = None if local_time else (plan.when or utcnow())
    zones = ZoneResolver(plan.wall, plan.default_zone, send_at=start, quiet=plan.quiet)
    return quiet_note(zones, ((zone or plan.default_zone, n) for zone, n in preview.zones.items()), settings)


def _scan(
    csv: RecipientCsv,
    components: list[dict[str, object]],
    rows: int,
    suppressed: frozenset[str] = frozenset(),
    zoned: bool = False,
) -> CsvPreview:
    rendered: list[RenderedRow] = []
    rejected: list[Rejected] = []
    accepted = rejected_total = duplicates = n_suppressed = 0
    prefixes: Counter[str] = Counter()
    zones: Counter[str] = Counter()
    resolver = ZoneResolver(None, "") if zoned else None  # "": the blast's zone, chosen in the form later
    seen: set[int] = set()  # hashes, not numbers: a million rows stay a few tens of MB
    for item in csv:
        if isinstance(item, RejectedRow):
            rejected_total += 1
            if len(rejected) < MAX_REJECTED_SHOWN:
                rejected.append(Rejected(row=item.row, value=item.value, reason=item.reason))
            continue
        assert isinstance(item, AcceptedRow)
        zone = ""
        if resolver is not None:
            cell = item.params.get(ZONE_COLUMN)
            try:
                zone = resolver.resolve(item.phone, cell)
            except ValueError as exc:  # create rejects the row: so does its preview
                rejected_total += 1
                if len(rejected) < MAX_REJECTED_SHOWN:
                    rejected.append(
                        Rejected(row=item.row, value=str(cell).strip()[:200], reason=f"{ZONE_COLUMN}: {exc}")
                    )
                continue
        key = hash(item.phone)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        accepted += 1
        zones[zone] += 1
        if item.phone in suppressed:
            n_suppressed += 1
        else:
            prefixes[item.phone.lstrip("+")[:PREFIX_DIGITS]] += 1
        if len(rendered) < rows:
            rendered.append(RenderedRow(item.row, item.phone, render_preview(components, item.params)))
    return CsvPreview(
        rendered=rendered,
        rejected=rejected,
        accepted=accepted,
        rejected_total=rejected_total,
        duplicates=duplicates,
        suppressed=n_suppressed,
        prefixes=dict(prefixes),
        zones=dict(zones) if zoned else None,
    )
