"""Provides TableScreen: the base of the console's list screens (templates, jobs, the suppression list, API
tokens, senders).

It owns one table with a status line under it, the live refresh, the prompt-then-act flow of an "add" and the
confirm-then-remove flow of the row under the cursor; errors of either show as one notification (BaseScreen).
A screen on it keeps only its columns, its rows (a service call) and its add and remove service calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar, cast

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from console.modals.confirm import ConfirmModal
from console.modals.prompt import PromptModal
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from console.widgets.table_rows import Rows, show_rows

#: What one load returns (a list of items, a page, …).
Data = TypeVar("Data")


class TableScreen(BaseScreen, Generic[Data]):
    """One table of rows keyed by a string, its status line, an add and a confirmed remove.

    Subclasses set TABLE_ID, STATUS_ID (the widget ids) and COLUMNS, and implement fetch, rows_of and status_of;
    one that removes rows also removal_question and remove_row.
    """

    TABLE_ID: ClassVar[str]
    STATUS_ID: ClassVar[str]
    COLUMNS: ClassVar[tuple[str, ...]]

    @dataclass
    class Loaded(Message):
        """A load finished (handled by the screen that posted it)."""

        data: object

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield from self.compose_above_table()
        yield DataTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
        yield Static("", id=self.STATUS_ID, classes="status-line")
        yield ConsoleFooter()

    def compose_above_table(self) -> ComposeResult:
        """Widgets between the banner and the table (a search box); none by default."""
        yield from ()

    @property
    def table(self) -> DataTable[object]:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    def on_mount(self) -> None:
        self.table.add_columns(*self.COLUMNS)
        self.table.focus()
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_rows()

    def reload(self) -> None:
        self.load_rows()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_rows(self) -> None:
        self.post_message(self.Loaded(await self.fetch()))

    def on_table_screen_loaded(self, m: Loaded) -> None:
        data = cast("Data", m.data)
        show_rows(self.table, self.rows_of(data))
        self.query_one(f"#{self.STATUS_ID}", Static).update(self.status_of(data))

    async def fetch(self) -> Data:
        """Read what the table shows (a service call; runs in the refresh worker)."""
        raise NotImplementedError

    def rows_of(self, data: Data) -> Rows:
        """(key, cells) of each row; the key is what `remove_row` gets."""
        raise NotImplementedError

    def status_of(self, data: Data) -> str:
        """The status line under the table."""
        raise NotImplementedError

    def current_key(self) -> str | None:
        """The key of the row under the cursor (None: the table is empty)."""
        table = self.table
        if table.row_count == 0:
            return None
        value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if value is None else str(value)

    def prompt(
        self,
        title: str,
        fields: list[tuple[str, str, str]],
        *,
        required: str,
        then: Callable[[dict[str, str]], Awaitable[None]],
    ) -> None:
        """Ask for `fields` (see PromptModal); when `required` is filled in, run `then(values)` and reload.

        Refused (with a notification) on a read-only console.
        """
        if self.refuse_if_read_only():
            return

        def answered(values: dict[str, str] | None) -> None:
            if values and values.get(required):
                self.apply_change(lambda: then(values))

        self.app.push_screen(PromptModal(title, fields), answered)

    def confirm_remove(self) -> None:
        """Ask `removal_question` about the row under the cursor; on yes, `remove_row` it and reload.

        Nothing happens on an empty table; refused (with a notification) on a read-only console.
        """
        if self.refuse_if_read_only():
            return
        key = self.current_key()
        if key is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.apply_change(lambda: self.remove_row(key))

        self.app.push_screen(self.removal_question(key), answered)

    def removal_question(self, key: str) -> ConfirmModal:
        """The confirmation asked before removing the row `key`."""
        raise NotImplementedError

    async def remove_row(self, key: str) -> None:
        """Remove the row `key` (a service call) and say so."""
        raise NotImplementedError

    @work(exclusive=False, exit_on_error=False, group="action")
    async def apply_change(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run a change off the UI's handlers; an error shows as a notification (BaseScreen), else reload."""
        await action()
        self.reload()
