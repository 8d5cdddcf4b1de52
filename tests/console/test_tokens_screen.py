"""The API tokens screen (7): create a token and see it once, revoke one behind a confirmation, and a read-only
console that can do neither."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static

from console.modals.token_created import TokenCreatedModal
from console.screens.tokens import TokensScreen
from shared.config import Settings
from shared.models import ApiToken
from shared.services import tokens
from tests.console.conftest import AppFactory, settle, text_of


async def test_create_shows_the_token_once_and_revoke_asks_first(db: Settings, make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        assert isinstance(app.screen, TokensScreen)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press(*"crm", "enter")
        role = app.screen.query_one("#field-role", Input)
        role.value = ""
        await pilot.press(*"operator", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TokenCreatedModal)
        shown = text_of(app.screen.query_one("#token-value", Static)).strip()
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, TokensScreen)
        table = app.screen.query_one("#tokens-table", DataTable)
        assert table.row_count == 1 and shown not in str(table.get_row_at(0))
        assert "1 live API tokens, 0 revoked" in text_of(app.screen.query_one("#tokens-status", Static))
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    row = await ApiToken.get(name="crm")
    assert row.role == "operator" and row.token_hash == tokens.hash_token(shown)
    assert row.revoked_at is not None


async def test_a_read_only_console_neither_creates_nor_revokes(db: Settings, make_app: AppFactory) -> None:
    await tokens.create_token(name="crm", role="viewer", actor="test")
    app = make_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await pilot.press("c")
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, TokensScreen)
        assert app.screen.query_one("#tokens-table", DataTable).row_count == 1
    assert (await ApiToken.get(name="crm")).revoked_at is None
    assert await ApiToken.all().count() == 1
