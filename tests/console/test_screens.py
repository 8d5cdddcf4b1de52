"""Pilot tests of the create form (CSV preview, rejected rows, confirm), the phone search, the test send, the
emergency stop behind its typed word, and the other screens opening with data."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from textual.widgets import DataTable, Input, Static

from console.modals.edit import EditBlastModal
from console.screens.blast_detail import BlastDetailScreen
from console.screens.blast_form import BlastFormScreen
from console.widgets.csv_preview import CsvPreviewBox
from shared.config import Settings
from shared.models import AuditLog, Blast, Recipient
from shared.status import BlastStatus
from tests.console.conftest import AppFactory, seed_blast, seed_template, settle, text_of, write_csv

B = BlastStatus


async def test_create_blast_through_the_form(db: Settings, make_app: AppFactory, tmp_path: Path) -> None:
    await seed_template()
    csv_path = write_csv(
        tmp_path / "r.csv", ["+6281234567890,Ada,A-1", "12,Bob,B-2", "+6281234567891,Cy,C-3"]
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, BlastFormScreen)
        await pilot.press(*"june promo", "enter")  # name, then the template (the only one is chosen)
        app.screen.query_one("#form-csv", Input).focus()
        await pilot.press(*str(csv_path), "enter")
        await settle(pilot)
        preview = text_of(app.screen.query_one("#form-preview", Static))
        assert "2 recipients, 1 rejected" in preview
        assert "Hi Ada, your order A-1 is on its way." in preview
        assert "rejected row 2" in preview
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert not isinstance(app.screen, BlastFormScreen)
    blast = await Blast.get(name="june promo")
    assert blast.status == B.SCHEDULED and blast.total == 2
    assert await Recipient.filter(blast_id=blast.id).count() == 2


async def test_form_reports_a_bad_csv(db: Settings, make_app: AppFactory, tmp_path: Path) -> None:
    await seed_template()
    bad = write_csv(tmp_path / "bad.csv", ["Ada,A-1"], header="name,1")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        app.screen.query_one("#form-csv", Input).focus()
        await pilot.press(*str(bad), "enter")
        await settle(pilot)
        assert "phone" in text_of(app.screen.query_one("#form-preview", Static))
    assert await Blast.all().count() == 0


async def test_search_by_phone(db: Settings, make_app: AppFactory) -> None:
    t = await seed_template()
    await seed_blast(t, "first", B.COMPLETED, sent=10)
    await seed_blast(t, "second", B.FAILED, failed=10, phone_base=0, n=10)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        await pilot.press(*"+6281200000003", "enter")
        await settle(pilot)
        table = app.screen.query_one("#search-table", DataTable)
        assert table.row_count == 2
        assert "2 blasts included +6281200000003" in text_of(app.screen.query_one("#search-status", Static))
        await pilot.press("enter")  # opens the blast
        await settle(pilot)
        assert type(app.screen).__name__ == "BlastDetailScreen"


async def test_test_send_from_the_blasts_screen(db: Settings, make_app: AppFactory) -> None:
    await seed_template("promo_bahasa", language="id")  # known to the sandbox's simulated Meta
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        await pilot.press(*"+6281234567890", "enter", *"Ada | 10%", "enter")
        await settle(pilot)
        assert any("sandbox: simulated" in n.message for n in app._notifications)
    assert await AuditLog.filter(action="test-send").count() == 1


async def test_emergency_stop_needs_the_typed_word(db: Settings, make_app: AppFactory) -> None:
    t = await seed_template()
    blast = await seed_blast(t, "running", B.PROCESSING)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("X")
        await pilot.pause()
        await pilot.press("y", "enter")  # a wrong word: nothing happens
        await settle(pilot)
        assert (await Blast.get(id=blast.id)).status == B.PROCESSING
        await pilot.press("backspace", *"STOP", "enter")
        await settle(pilot)
    assert (await Blast.get(id=blast.id)).status == B.PAUSED


async def test_other_screens_open(db: Settings, make_app: AppFactory) -> None:
    t = await seed_template()
    await seed_blast(t, "done", B.COMPLETED, sent=10)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "COMPLETED" in text_of(app.screen.query_one("#by-status", Static))
        for key, table_id in (("3", "#template-table"), ("4", "#job-table"), ("5", "#suppression-table")):
            await pilot.press(key)
            await settle(pilot)
            assert app.screen.query_one(table_id, DataTable) is not None
        await pilot.press("3")
        await settle(pilot)
        assert app.screen.query_one("#template-table", DataTable).row_count == 1


async def test_edit_replaces_recipients_with_a_preview(
    db: Settings, make_app: AppFactory, tmp_path: Path
) -> None:
    t = await seed_template()
    blast = await seed_blast(t, "to be edited", B.SCHEDULED, n=10)
    csv_path = write_csv(
        tmp_path / "new.csv", ["+6281234567890,Ada,A-1", "12,Bob,B-2", "+6281234567891,Cy,C-3"]
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EditBlastModal)
        app.screen.query_one("#recipients", Input).focus()
        await pilot.press(*str(csv_path), "enter")  # Enter in the file field previews, it does not save
        await settle(pilot)
        assert isinstance(app.screen, EditBlastModal)
        preview = text_of(app.screen.query_one(CsvPreviewBox))
        assert "2 recipients, 1 rejected" in preview
        assert "Hi Ada, your order A-1 is on its way." in preview
        assert "rejected row 2" in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, EditBlastModal)
        assert any("2 recipients, 1 rejected row" in n.message for n in app._notifications)
    fresh = await Blast.get(id=blast.id)
    assert fresh.status == B.SCHEDULED and fresh.total == 2 and fresh.n_pending == 2
    phones = sorted(await Recipient.filter(blast_id=blast.id).values_list("phone", flat=True))
    assert phones == ["+6281234567890", "+6281234567891"]
    assert await AuditLog.filter(entity_id=str(blast.id), action="edit").count() == 1


async def test_edit_shows_why_a_file_is_unusable(db: Settings, make_app: AppFactory, tmp_path: Path) -> None:
    t = await seed_template()
    blast = await seed_blast(t, "kept", B.DRAFT, n=4)
    bad = write_csv(tmp_path / "bad.csv", ["Ada,A-1"], header="name,1")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(BlastDetailScreen(blast.id))
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        app.screen.query_one("#recipients", Input).focus()
        await pilot.press(*str(bad), "enter")
        await settle(pilot)
        assert "phone" in text_of(app.screen.query_one(CsvPreviewBox))
        await pilot.press("escape")
        await settle(pilot)
    assert (await Blast.get(id=blast.id)).total == 4


async def test_form_warns_with_metas_tier(
    db: Settings, make_app: AppFactory, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    """The tier Meta reported (cached in Redis by whoever asked) sets the messaging-limit warning."""
    await seed_template()
    await redis_client.set(db.key("messaging_limit"), '{"tier": "TIER_TEST", "limit": 1}')
    csv_path = write_csv(tmp_path / "r.csv", ["+6281234567890,Ada,A-1", "+6281234567891,Cy,C-3"])
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        app.screen.query_one("#form-csv", Input).focus()
        await pilot.press(*str(csv_path), "enter")
        await settle(pilot)
        preview = text_of(app.screen.query_one(CsvPreviewBox))
        assert "WARNING: 2 recipients + 0 numbers messaged in the last 24 h exceed" in preview
        assert "messaging limit of 1 unique users per 24 h (Meta tier TIER_TEST)" in preview
