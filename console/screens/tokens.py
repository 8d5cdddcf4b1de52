"""Provides the API tokens screen: list, create (shown once) and revoke the HTTP API's Bearer tokens."""

from __future__ import annotations

from textual.binding import Binding

from console.format import local_time
from console.modals.confirm import ConfirmModal
from console.modals.token_created import TokenCreatedModal
from console.screens.table_screen import TableScreen
from console.widgets.table_rows import Rows
from shared.actors import current_actor
from shared.services import tokens


class TokensScreen(TableScreen[list[tokens.TokenInfo]]):
    """The HTTP API's tokens (never the tokens themselves: only their names, roles and use)."""

    REFRESH_S = 10.0
    TABLE_ID = "tokens-table"
    STATUS_ID = "tokens-status"
    COLUMNS = ("Name", "Role", "Prefix", "Created", "By", "Last used", "Revoked")
    BINDINGS = [
        Binding(
            "c", "create_token", "Create", tooltip="Create an API token (shown once)", id="tokens.create"
        ),
        Binding(
            "d", "revoke_token", "Revoke", tooltip="Revoke the token under the cursor", id="tokens.revoke"
        ),
    ]

    async def fetch(self) -> list[tokens.TokenInfo]:
        return await tokens.list_tokens()

    def rows_of(self, data: list[tokens.TokenInfo]) -> Rows:
        zone = self.console.settings.zone
        return [
            (
                t.name,
                (
                    t.name,
                    t.role.value,
                    t.prefix + "…",
                    local_time(t.created_at, zone),
                    t.created_by,
                    local_time(t.last_used_at, zone),
                    local_time(t.revoked_at, zone),
                ),
            )
            for t in data
        ]

    def status_of(self, data: list[tokens.TokenInfo]) -> str:
        live = sum(1 for t in data if t.revoked_at is None)
        return f"{live} live API tokens, {len(data) - live} revoked" + (
            "" if self.console.settings.BLAST_API else " · the API is off (BLAST_API=0)"
        )

    def action_create_token(self) -> None:
        self.prompt(
            "Create an API token",
            [("name", "Name (who uses it, e.g. crm)", ""), ("role", "Role: operator or viewer", "viewer")],
            required="name",
            then=self.create_token,
        )

    async def create_token(self, values: dict[str, str]) -> None:
        role = values.get("role", "") or "viewer"
        created = await tokens.create_token(name=values["name"], role=role, actor=current_actor())
        self.app.push_screen(TokenCreatedModal(created.info.name, created.info.role.value, created.token))

    def action_revoke_token(self) -> None:
        self.confirm_remove()

    def removal_question(self, key: str) -> ConfirmModal:
        return ConfirmModal(
            f"Revoke token {key}",
            f"Revoke API token {key}? Its next request is refused; the client needs a new token.",
            confirm_label="Revoke",
        )

    async def remove_row(self, key: str) -> None:
        await tokens.revoke_token(key, actor=current_actor())
        self.notify(f"token {key} revoked", title="Revoked")
