"""Provides the blasts table: one row per blast with status, local send time, a progress bar and counts.

It only renders and posts requests; the screen decides what to do with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from console.format import bar, done_count, local_time
from console.widgets.status_badge import status_text
from shared.services.blast_reads import BlastSummary

COLUMNS = (
    ("mark", " "),
    ("id", "ID"),
    ("name", "Name"),
    ("template", "Template"),
    ("status", "Status"),
    ("send_at", "Send at"),
    ("progress", "Progress"),
    ("sent", "Done/Total"),
    ("failed", "Failed"),
)
MARK = "●"


class BlastTable(DataTable[str | Text]):
    """The blasts, keyed by id; `space` asks to mark the row under the cursor."""

    BINDINGS = [
        Binding(
            "space", "toggle_mark", "Mark", tooltip="Mark this blast for a bulk action", id="blasts.mark"
        ),
    ]

    @dataclass
    class MarkToggled(Message):
        blast_id: int

    def __init__(self, *, id: str | None = None) -> None:  # Textual's own parameter name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: dict[int, tuple[str, ...]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def current_blast_id(self) -> int | None:
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return int(str(key.value)) if key.value is not None else None

    def action_toggle_mark(self) -> None:
        blast_id = self.current_blast_id
        if blast_id is not None:
            self.post_message(self.MarkToggled(blast_id))

    def show(self, items: Iterable[BlastSummary], *, marks: set[int], zone: ZoneInfo) -> None:
        """Render the blasts, updating rows in place when the same blasts are shown (keeps the cursor)."""
        rows = {b.id: self._cells(b, b.id in marks, zone) for b in items}
        if list(rows) != list(self._shown):
            current = self.current_blast_id
            self.clear()
            for blast_id, cells in rows.items():
                self.add_row(*self._styled(cells), key=str(blast_id))
            if current is not None and current in rows:
                self.move_cursor(row=self.get_row_index(str(current)), animate=False)
        else:
            for blast_id, cells in rows.items():
                old = self._shown[blast_id]
                if old == cells:
                    continue
                styled = self._styled(cells)
                for (key, _), new_cell, old_cell, value in zip(COLUMNS, cells, old, styled, strict=True):
                    if new_cell != old_cell:
                        self.update_cell(str(blast_id), key, value)
        self._shown = rows

    @staticmethod
    def _cells(b: BlastSummary, marked: bool, zone: ZoneInfo) -> tuple[str, ...]:
        done = done_count(b.counts, b.total)
        return (
            MARK if marked else " ",
            str(b.id),
            b.name,
            f"{b.template}/{b.language}",
            b.status.value,
            local_time(b.send_at, zone),
            bar(done, b.total),
            f"{done:,}/{b.total:,}",
            f"{b.counts['failed']:,}",
        )

    @staticmethod
    def _styled(cells: tuple[str, ...]) -> list[str | Text]:
        out: list[str | Text] = list(cells)
        out[0] = Text(cells[0], style="bold")
        out[4] = status_text(cells[4])
        out[8] = Text(cells[8], style="red" if cells[8] != "0" else "")
        return out
