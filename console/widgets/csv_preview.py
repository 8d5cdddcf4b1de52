"""Provides CsvPreviewBox: what a recipients file would give (counts, the first rows rendered into the template,
rejected rows with their reasons, the estimated duration and the messaging-limit warning), for the create form
and the edit dialog alike. It only renders; the screen reads the file (off the UI loop) and posts PreviewReady.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group
from rich.text import Text
from textual.message import Message
from textual.widgets import Static

from shared.services import cost_estimate
from shared.services.messaging import SendEstimate
from shared.services.preview import CsvPreview
from shared.text import duration, plural

#: Rejected rows listed (the count is exact).
REJECTED_SHOWN = 10


@dataclass
class PreviewReady(Message):
    """A recipients file was read (or could not be: `error` says why)."""

    preview: CsvPreview | None
    estimate: SendEstimate | None
    error: str | None
    #: What it would cost (None when the file could not be read).
    cost: cost_estimate.Cost | None = field(default=None)


class CsvPreviewBox(Static):
    """The preview of one recipients file."""

    DEFAULT_CSS = "CsvPreviewBox { height: auto; padding: 0 1; background: $boost; }"

    def show_reading(self) -> None:
        self.update(Text("reading the file …", style="italic"))

    def show_result(self, result: PreviewReady, quiet: tuple[str | None, bool] = (None, False)) -> None:
        """Render a file's preview; `quiet`: the quiet-hours line (who will wait) and whether it is an error of
        the form's fields instead."""
        if result.error is not None or result.preview is None or result.estimate is None:
            self.update(Text(result.error or "cannot read the file", style="bold red"))
            return
        p, e = result.preview, result.estimate
        parts: list[Text] = [
            Text(
                f"{plural(p.accepted, 'recipient')}, {plural(p.rejected_total, 'rejected row')}, "
                f"{plural(p.duplicates, 'duplicate')}",
                style="bold",
            )
        ]
        for r in p.rendered:
            parts.append(Text(f"row {r.row} → {r.phone}:", style="bold"))
            parts.append(Text("  " + r.text.replace("\n", "\n  ")))
        for rej in p.rejected[:REJECTED_SHOWN]:
            parts.append(Text(f"rejected row {rej.row}: {rej.value!r}: {rej.reason}", style="red"))
        if p.rejected_total > REJECTED_SHOWN:
            parts.append(Text(f"… and {p.rejected_total - REJECTED_SHOWN:,} more rejected rows", style="red"))
        parts.append(Text(f"takes about {duration(e.duration_s)} at {e.rate_limit:g} messages/s"))
        if e.warning:
            parts.append(Text("WARNING: " + e.warning, style="bold yellow"))
        if p.suppressed:
            parts.append(Text(f"{p.suppressed:,} on the suppression list: not sent, not counted in the cost"))
        note, is_error = quiet
        if note:
            parts.append(
                Text(note if is_error else f"quiet hours: {note}", style="red" if is_error else "yellow")
            )
        if result.cost is not None:
            parts.append(Text("\n".join(cost_estimate.summary_lines(result.cost))))
        self.update(Group(*parts))
