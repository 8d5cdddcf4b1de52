"""The list screens on the shared TableScreen base (console/screens/table_screen.py): the confirm-then-remove of
the senders, API tokens and suppression screens (cancel keeps the row under the cursor, yes removes it: a token
is revoked, its row stays, marked), read-only keys, and the jobs screen's filter and retry on the same base."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.modals.confirm import ConfirmModal
from console.screens.base import MUTATING_ACTIONS
from console.screens.jobs import JobsScreen
from console.screens.senders import SendersScreen
from console.screens.suppression import SuppressionScreen
from console.screens.table_screen import TableScreen
from console.screens.tokens import TokensScreen
from shared.config import Settings
from shared.models import ApiToken, Sender, Suppression
from shared.services import live, suppression, tokens
from tests.console.conftest import AppFactory, settle, text_of

PNID = "200000000000001"
PHONE = "+6281299990000"


@dataclass(frozen=True)
class Case:
    screen_key: str
    row_key: str
    seed: Callable[[], Awaitable[object]]
    is_removed: Callable[[], Awaitable[bool]]
    #: the row leaves the table (a revoked token stays listed, marked revoked)
    leaves_table: bool = True


async def _seed_sender() -> None:
    await Sender.create(phone_number_id=PNID, waba_id="1", token_env="T")


async def _sender_removed() -> bool:
    return not await Sender.exists(phone_number_id=PNID)


async def _seed_token() -> None:
    await tokens.create_token(name="crm", role="viewer", actor="test")


async def _token_revoked() -> bool:
    return (await ApiToken.get(name="crm")).revoked_at is not None


async def _seed_suppression() -> None:
    await suppression.add(PHONE, reason="asked", actor="test")


async def _suppression_removed() -> bool:
    return not await Suppression.exists(phone=PHONE)


CASES = {
    "senders": Case("8", PNID, _seed_sender, _sender_removed),
    "tokens": Case("7", "crm", _seed_token, _token_revoked, leaves_table=False),
    "suppression": Case("5", PHONE, _seed_suppression, _suppression_removed),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_remove_asks_first_cancel_keeps_the_row_and_yes_removes_it(
    db: Settings, make_app: AppFactory, case: Case
) -> None:
    await case.seed()
    app = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press(case.screen_key)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TableScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(case.row_key))
        await pilot.press("d")
        await settle(pilot)
        asked = app.screen
        assert isinstance(asked, ConfirmModal)
        await pilot.press("escape")
        await settle(pilot)
        assert screen.current_key() == case.row_key and not await case.is_removed()
        assert app.screen is screen
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is screen and await case.is_removed()
        keys = [row.key.value for row in table.ordered_rows]
        assert (case.row_key not in keys) is case.leaves_table


def test_a_read_only_console_hides_every_change_of_the_list_screens() -> None:
    """Each add, import, remove and revoke key is hidden (not only refused) on a read-only console."""
    actions = {
        b.action.split("(")[0]
        for screen in (SendersScreen, TokensScreen, SuppressionScreen)
        for b in screen.BINDINGS
        if isinstance(b, Binding)
    }
    assert actions - MUTATING_ACTIONS == {"search", "page"}


async def test_the_jobs_screen_filters_failed_jobs_and_retries_the_one_under_the_cursor(
    db: Settings, make_app: AppFactory
) -> None:
    now = time.time()
    await live.record_job(db, live.JobRecord("blast_run", "blast:1", "ok", 120, now - 5, "d1"))
    await live.record_job(db, live.JobRecord("blast_run", "blast:2", "failed", 80, now, "d1", error="boom"))
    app = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 2
        assert text_of(screen.query_one("#jobs-status", Static)).strip() == "2 recent jobs, 1 failed"
        await pilot.press("f")
        await settle(pilot)
        assert table.row_count == 1 and "showing failed only" in text_of(
            screen.query_one("#jobs-status", Static)
        )
        await pilot.press("r")
        await settle(pilot)
        asked = app.screen
        assert isinstance(asked, ConfirmModal) and "Retry blast_run blast:2" in asked.question
        await pilot.press("escape")
        await settle(pilot)
