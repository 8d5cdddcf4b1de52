"""Provides show_rows(): put rows into a DataTable, touching only the cells that changed since the last call.

A live screen refreshes about once a second; clearing and re-adding every row each time would redraw the whole
table (and its scroll position) for a handful of changed counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from rich.text import Text
from textual.widgets import DataTable

#: The cells each table shows now, by row key (compared by value, so an identical refresh changes nothing).
_SHOWN: WeakKeyDictionary[DataTable[Any], dict[str, tuple[object, ...]]] = WeakKeyDictionary()

Rows = Sequence[tuple[str, Sequence[object]]]


def _same(a: object, b: object) -> bool:
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return type(a) is type(b) and a == b


def show_rows(table: DataTable[Any], rows: Rows) -> int:
    """Show `rows` (key, cells) in `table`, in order, keeping the cursor row.

    Same keys in the same order: only changed cells are updated. Otherwise the rows are replaced.

    Returns:
        How many cells were written (0 when nothing changed).
    """
    new = {key: tuple(cells) for key, cells in rows}
    shown = _SHOWN.get(table)
    written = 0
    if shown is not None and list(shown) == list(new) and table.row_count == len(new):
        columns = [c.key for c in table.ordered_columns]
        for key, cells in new.items():
            old = shown[key]
            for column, before, after in zip(columns, old, cells, strict=True):
                if not _same(before, after):
                    table.update_cell(key, column, after, update_width=True)
                    written += 1
    else:
        row = table.cursor_row
        table.clear()
        for key, cells in new.items():
            table.add_row(*cells, key=key)
            written += len(cells)
        if new:
            table.move_cursor(row=min(row, len(new) - 1), animate=False)
    _SHOWN[table] = new
    return written
