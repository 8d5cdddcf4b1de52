"""Provides the API tokens screen: list, create (shown once) and revoke the HTTP API's Bearer tokens."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from console.format import local_time
from console.modals.confirm import ConfirmModal
from console.modals.prompt import PromptModal
from console.modals.token_created import TokenCreatedModal
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from shared.actors import current_actor
from shared.services import tokens


@dataclass
class TokensLoaded(Message):
    items: list[tokens.TokenInfo]


class TokensScreen(BaseScreen):
    """The HTTP API's tokens (never the tokens themselves: only their names, roles and use)."""

    REFRESH_S = 10.0
    BINDINGS = [
        Binding(
            "c", "create_token", "Create", tooltip="Create an API token (shown once)", id="tokens.create"
        ),
        Binding(
            "d", "revoke_token", "Revoke", tooltip="Revoke the token under the cursor", id="tokens.revoke"
        ),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield DataTable(id="tokens-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="tokens-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "Name", "Role", "Prefix", "Created", "By", "Last used", "Revoked"
        )
        self.query_one(DataTable).focus()
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_tokens()

    def reload(self) -> None:
        self.load_tokens()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_tokens(self) -> None:
        self.post_message(TokensLoaded(await tokens.list_tokens()))

    def on_tokens_loaded(self, m: TokensLoaded) -> None:
        zone = self.console.settings.zone
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for t in m.items:
            table.add_row(
                t.name,
                t.role.value,
                t.prefix + "…",
                local_time(t.created_at, zone),
                t.created_by,
                local_time(t.last_used_at, zone),
                local_time(t.revoked_at, zone),
                key=t.name,
            )
        if m.items:
            table.move_cursor(row=min(row, len(m.items) - 1), animate=False)
        live = sum(1 for t in m.items if t.revoked_at is None)
        self.query_one("#tokens-status", Static).update(
            f"{live} live API tokens, {len(m.items) - live} revoked"
            + ("" if self.console.settings.BLAST_API else " · the API is off (BLAST_API=0)")
        )

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if value is None else str(value)

    def action_create_token(self) -> None:
        if self.refuse_if_read_only():
            return

        def answered(values: dict[str, str] | None) -> None:
            if values and values.get("name"):
                self.create_worker(values["name"], values.get("role", "") or "viewer")

        self.app.push_screen(
            PromptModal(
                "Create an API token",
                [
                    ("name", "Name (who uses it, e.g. crm)", ""),
                    ("role", "Role: operator or viewer", "viewer"),
                ],
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def create_worker(self, name: str, role: str) -> None:
        created = await tokens.create_token(name=name, role=role, actor=current_actor())
        self.reload()
        self.app.push_screen(TokenCreatedModal(created.info.name, created.info.role.value, created.token))

    def action_revoke_token(self) -> None:
        if self.refuse_if_read_only():
            return
        name = self._current()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.revoke_worker(name)

        self.app.push_screen(
            ConfirmModal(
                f"Revoke token {name}",
                f"Revoke API token {name}? Its next request is refused; the client needs a new token.",
                confirm_label="Revoke",
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def revoke_worker(self, name: str) -> None:
        await tokens.revoke_token(name, actor=current_actor())
        self.notify(f"token {name} revoked", title="Revoked")
        self.reload()
