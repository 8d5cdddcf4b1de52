"""The Senders screen (8): lists the numbers (never their tokens), adds one through the prompt, removes one behind
a confirmation; a read-only console does neither."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Static

from console.modals.confirm import ConfirmModal
from console.screens.senders import SendersScreen
from shared.config import Settings
from shared.models import Blast, Sender
from shared.whatsapp.sandbox import SANDBOX_PHONE_NUMBER_ID
from tests.console.conftest import AppFactory, seed_template, settle, text_of, write_csv

PNID = "200000000000001"


async def test_add_list_and_remove_a_sender(db: Settings, make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("8")
        await settle(pilot)
        assert isinstance(app.screen, SendersScreen)
        await pilot.press("a")
        await settle(pilot)
        for key, value in [
            ("phone_number_id", PNID),
            ("waba_id", "102290129340398"),
            ("token_env", "WHATSAPP_TOKEN_BRAND_B"),
            ("name", "brand b"),
            ("rate", "500"),
        ]:
            app.screen.query_one(f"#field-{key}", Input).value = value
        app.screen.query_one("#field-rate", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SendersScreen)
        table = app.screen.query_one("#senders-table", DataTable)
        assert table.row_count == 2  # the sandbox's own number is the default sender, listed first
        default = [str(c) for c in table.get_row_at(0)]
        assert default[0] == SANDBOX_PHONE_NUMBER_ID and default[-1] == "yes"
        row = [str(c) for c in table.get_row_at(1)]
        assert row[:4] == [
            PNID,
            "brand b",
            "102290129340398",
            "80/s",
        ]  # Meta's default level is below the cap
        assert "2 sender numbers in" in text_of(app.screen.query_one("#senders-status", Static))
        table.move_cursor(row=1)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert await Sender.filter(phone_number_id=PNID).count() == 0


async def test_a_read_only_console_neither_adds_nor_removes(db: Settings, make_app: AppFactory) -> None:
    await Sender.create(phone_number_id=PNID, waba_id="1", token_env="T")
    app = make_app(read_only=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("8")
        await settle(pilot)
        await pilot.press("a")
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, SendersScreen)
        assert app.screen.query_one("#senders-table", DataTable).row_count == 2
    assert await Sender.filter(phone_number_id=PNID).exists()


async def test_the_blast_form_sends_from_a_pool(db: Settings, make_app: AppFactory, tmp_path: Path) -> None:
    await seed_template()
    for pnid in ("200000000000001", "200000000000002"):
        await Sender.create(phone_number_id=pnid, waba_id="102290129340398", token_env="T")
    csv_path = write_csv(tmp_path / "r.csv", ["+6281234567890,Ada,A-1", "+6281234567891,Cy,C-3"])
    app = make_app()
    async with app.run_test(size=(120, 50)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        await pilot.press(*"pool", "enter")
        app.screen.query_one("#form-csv", Input).focus()
        await pilot.press(*str(csv_path), "enter")
        await settle(pilot)
        app.screen.query_one("#form-senders", Input).value = "200000000000001, 200000000000002"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        question = " ".join(text_of(w) for w in app.screen.query(Static))
        assert "from 2 numbers (200000000000001, 200000000000002)" in question
        await pilot.press("y")
        await settle(pilot)
    blast = await Blast.get(name="pool")
    assert blast.senders == ["200000000000001", "200000000000002"] and blast.total == 2
