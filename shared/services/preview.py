"""Provides the create form's look at a recipients file before anything is written: the first rows rendered
into the template, the rejected rows with their reasons, and the counts. Parsing runs in a thread, off the UI loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import Settings
from shared.models import Suppression
from shared.parsing.csv_rows import AcceptedRow, RecipientCsv, RejectedRow
from shared.parsing.template_params import render_preview
from shared.services.blast_import import Rejected, open_csv
from shared.services.blasts import approved_template

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


#: Digits of a number kept for its market (the longest calling-code prefix of a rate card is shorter).
PREFIX_DIGITS = 6


async def preview_csv(
    *, settings: Settings, template: str, language: str, path: str | Path, rows: int = 3
) -> CsvPreview:
    """Read a recipients file against an APPROVED template without writing anything.

    Raises:
        ValidationFailed: the template is unknown or not APPROVED.
        CsvError: the file cannot be used (missing, no phone column, a parameter column missing …).
    """
    tmpl = await approved_template(template, language)
    csv = await asyncio.to_thread(open_csv, path, tmpl, {}, settings)
    components = list(tmpl.components or [])
    phones: list[str] = await Suppression.all().values_list("phone", flat=True)  # type: ignore[assignment]  # flat: one column
    suppressed = frozenset(phones)
    result = await asyncio.to_thread(_scan, csv, components, rows, suppressed)
    return CsvPreview(
        rendered=result.rendered,
        rejected=result.rejected,
        accepted=result.accepted,
        rejected_total=result.rejected_total,
        duplicates=result.duplicates,
        suppressed=result.suppressed,
        category=tmpl.category,
        prefixes=result.prefixes,
    )


def _scan(
    csv: RecipientCsv,
    components: list[dict[str, object]],
    rows: int,
    suppressed: frozenset[str] = frozenset(),
) -> CsvPreview:
    rendered: list[RenderedRow] = []
    rejected: list[Rejected] = []
    accepted = rejected_total = duplicates = n_suppressed = 0
    prefixes: Counter[str] = Counter()
    seen: set[int] = set()  # hashes, not numbers: a million rows stay a few tens of MB
    for item in csv:
        if isinstance(item, RejectedRow):
            rejected_total += 1
            if len(rejected) < MAX_REJECTED_SHOWN:
                rejected.append(Rejected(row=item.row, value=item.value, reason=item.reason))
            continue
        assert isinstance(item, AcceptedRow)
        key = hash(item.phone)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        accepted += 1
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
    )
