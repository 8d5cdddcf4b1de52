"""Pilot tests of the cost in the console: the create form's preview and its confirm dialog show the estimate per
market (suppressed and invalid rows not counted), or say that no rate card is imported."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from console.modals.confirm import ConfirmModal
from console.screens.blast_form import BlastFormScreen
from console.widgets.csv_preview import CsvPreviewBox
from shared.config import Settings
from shared.models import Blast, Suppression
from shared.services import pricing, rate_card_import
from tests.console.conftest import AppFactory, seed_template, settle, text_of, write_csv

DATA = Path(__file__).parent.parent / "data" / "pricing"
ROWS = [
    "+6281234567890,Ada,A-1",
    "12,Bob,B-2",
    "+6281234567891,Cy,C-3",
    "+18095550100,Di,D-4",
    "+6281234567892,E,E",
]


async def _fill_form(app: object, pilot: object, csv_path: Path) -> tuple[str, str]:
    """Open the form, read the CSV, ask to create: (the preview's text, the confirm dialog's question)."""
    from textual.pilot import Pilot

    from console.app import BlastConsole

    assert isinstance(app, BlastConsole) and isinstance(pilot, Pilot)
    app.open_blast_form()
    await settle(pilot)
    assert isinstance(app.screen, BlastFormScreen)
    await pilot.press(*"cost test", "enter")
    app.screen.query_one("#form-csv", Input).focus()
    await pilot.press(*str(csv_path), "enter")
    await settle(pilot)
    preview = text_of(app.screen.query_one(CsvPreviewBox))
    await pilot.press("ctrl+s")
    await settle(pilot)
    assert isinstance(app.screen, ConfirmModal)
    question = app.screen.question
    return preview, question


async def test_preview_and_confirm_show_the_estimate(
    db: Settings, make_app: AppFactory, tmp_path: Path
) -> None:
    await seed_template()
    await rate_card_import.import_card(
        rates=DATA / "sample-rates-idr.csv",
        markets=DATA / "sample-markets.csv",
        currency="IDR",
        effective="2000-01-01",
        actor="tester",
    )
    await Suppression.create(phone="+6281234567892", reason="opted out")
    csv_path = write_csv(tmp_path / "r.csv", ROWS)
    app = make_app()
    async with app.run_test(size=(120, 50)) as pilot:
        preview, question = await _fill_form(app, pilot, csv_path)
        await pilot.press("y")
        await settle(pilot)
    # utility: 2 x 356.65 (Indonesia) + 1 x 180.00 (+1 809); the invalid and the suppressed row not counted
    assert "1 on the suppression list: not sent, not counted in the cost" in preview
    for text in (preview, question):
        assert "estimated cost: IDR 893.30 for 3 messages" in text
        assert "Indonesia: 2 x IDR 356.65 = IDR 713.30" in text
        assert "Rest of Latin America: 1 x IDR 180.00 = IDR 180.00" in text
        assert "(if all are delivered; the category applied by Meta at send time may differ)" in text
    assert "Send order_update (en_US) to 4 recipients now?" in question
    assert await Blast.filter(name="cost test").count() == 1


async def test_confirm_says_when_no_rate_card_is_imported(
    db: Settings, make_app: AppFactory, tmp_path: Path
) -> None:
    await seed_template()
    csv_path = write_csv(tmp_path / "r.csv", ROWS[:1])
    app = make_app()
    async with app.run_test(size=(120, 50)) as pilot:
        preview, question = await _fill_form(app, pilot, csv_path)
        await pilot.press("n")
        await settle(pilot)
    assert "estimated cost: no rate card imported" in preview
    assert "estimated cost: no rate card imported" in question
    assert await Blast.all().count() == 0


async def test_demo_imports_the_sample_card_once(db: Settings) -> None:
    from console.demo import import_sample_card

    assert "SAMPLE rate card" in await import_sample_card()
    assert await import_sample_card() == ""
    (card,) = await pricing.list_cards()
    assert card.currency == "IDR" and "sample-rates-idr.csv" in card.source


async def test_detail_shows_the_actual_cost_beside_the_estimate(db: Settings, make_app: AppFactory) -> None:
    from console.screens.blast_detail import BlastDetailScreen
    from shared.models import Recipient
    from shared.status import BlastStatus, RecipientStatus

    await rate_card_import.import_card(
        rates=DATA / "sample-rates-idr.csv",
        markets=DATA / "sample-markets.csv",
        currency="IDR",
        effective="2000-01-01",
        actor="tester",
    )
    t = await seed_template()
    blast = await Blast.create(
        name="b", template=t, status=BlastStatus.PROCESSING, total=3, n_pending=1, n_read=2
    )
    await Recipient.bulk_create(
        [
            Recipient(blast_id=blast.id, phone="+6281234567890", row=1),
            Recipient(
                blast_id=blast.id, phone="+6281234567891", row=2, status=RecipientStatus.READ,
                billable=True, pricing_category="marketing", pricing_type="regular",
            ),
            Recipient(
                blast_id=blast.id, phone="+18095550100", row=3, status=RecipientStatus.READ,
                billable=True, pricing_category="utility", pricing_type="regular",
            ),
        ]
    )  # fmt: skip
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        screen = BlastDetailScreen(blast.id)
        await app.push_screen(screen)
        await settle(pilot)
        for _ in range(3):
            await pilot.press("v")
            await settle(pilot)
        text = text_of(screen.query_one("#cost-text", Static))
    assert "estimated cost: IDR 893.30 for 3 messages" in text
    assert "actual cost: IDR 766.33 for 2 messages" in text  # 586.33 marketing + 180.00 utility
    assert "Indonesia (marketing): 1 x IDR 586.33 = IDR 586.33" in text


async def test_template_list_shows_a_category_meta_changed(db: Settings, make_app: AppFactory) -> None:
    from textual.widgets import DataTable

    from shared.clock import utcnow
    from shared.models import Template

    t = await seed_template()
    await Template.filter(id=t.id).update(
        category="MARKETING", previous_category="UTILITY", category_changed_at=utcnow()
    )
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        await settle(pilot)
        table = app.screen.query_one("#template-table", DataTable)
        assert "MARKETING (was UTILITY)" in [str(cell) for cell in table.get_row_at(0)]
