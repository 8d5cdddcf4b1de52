"""Pilot tests of the create form's quiet hours and local time: the preview says who will wait (the estimate
create makes), a bad field is one line naming it and creates nothing, and the blast created keeps them; and of
the edit dialog giving a draft quiet hours and scheduling it."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from textual.app import App
from textual.widgets import Checkbox, Input, Static

from console.app import build_app
from console.modals.confirm import ConfirmModal
from console.modals.edit import EditBlastModal
from console.screens.blast_form import BlastFormScreen
from shared.config import Settings
from shared.models import Blast, Recipient
from shared.services import blasts
from shared.status import BlastStatus
from tests.console.conftest import frozen_clock, seed_template, settle, text_of, write_csv

B = BlastStatus
#: 20:59:59 WITA: at 1 message/s one of the three WITA recipients goes out before 21:00, two wait.
BEFORE_NINE = "2030-06-03T20:59:59+08:00"
ROWS = ["+6281234567890,Ada,A-1,WITA", "+6281234567891,Bob,B-2,WITA", "+6281234567892,Cy,C-3,WITA"]


def preview_text(app: App[None]) -> str:
    return text_of(app.screen.query_one("#form-preview", Static))


async def test_the_form_shows_who_quiet_hours_hold_and_creates_the_blast_with_them(
    db: Settings, tmp_path: Path
) -> None:
    await seed_template()
    csv_path = write_csv(tmp_path / "r.csv", ROWS, header="phone,1,2,timezone")
    app = build_app(db.model_copy(update={"BLAST_RATE_LIMIT": 1.0}), clock=frozen_clock)
    async with app.run_test(size=(120, 60)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        assert isinstance(app.screen, BlastFormScreen)
        form = app.screen
        assert form.query_one("#form-quiet-hours", Input).value == "off"  # BLAST_QUIET_HOURS unset
        await pilot.press(*"night promo", "enter")
        form.query_one("#form-csv", Input).focus()
        await pilot.press(*str(csv_path), "enter")
        await settle(pilot)
        form.query_one("#form-send-at", Input).value = BEFORE_NINE
        await settle(pilot)
        assert "3 recipients" in preview_text(app) and "will wait" not in preview_text(app)

        form.query_one("#form-quiet-hours", Input).value = "21:00-08:00"
        await settle(pilot)
        assert "quiet hours: about 2 recipients will wait until 08:00 WITA" in preview_text(app)

        form.query_one("#form-quiet-hours", Input).value = "9pm-8am"
        await settle(pilot)
        assert "Quiet hours '9pm-8am': write a window such as 21:00-08:00, or off" in preview_text(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmModal)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors == ["Quiet hours '9pm-8am': write a window such as 21:00-08:00, or off"]

        form.query_one("#form-quiet-hours", Input).value = "21:00-08:00"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        question = " ".join(text_of(w) for w in app.screen.query(Static))
        assert (
            "Quiet hours 21:00-08:00 (each recipient's local time): about 2 recipients will wait" in question
        )
        await pilot.press("y")
        await settle(pilot)
        assert not isinstance(app.screen, BlastFormScreen)
        assert any("quiet hours: about 2 recipients will wait" in n.message for n in app._notifications)
    blast = await Blast.get(name="night promo")
    assert blast.status == B.SCHEDULED and blast.quiet_hours == "21:00-08:00" and blast.total == 3
    assert blast.due_times is not None and await Recipient.filter(blast_id=blast.id, due_at=None).count() == 0


async def test_the_form_sends_at_local_time_in_each_zone(db: Settings, tmp_path: Path) -> None:
    await seed_template()
    rows = ["+6281234567890,Ada,A-1,WIB", "+6281234567891,Bob,B-2,", "+6281234567892,Cy,C-3,Mars/Base"]
    csv_path = write_csv(tmp_path / "r.csv", rows, header="phone,1,2,timezone")
    app = build_app(db, clock=frozen_clock)
    async with app.run_test(size=(120, 60)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        form = app.screen
        await pilot.press(*"local promo", "enter")
        form.query_one("#form-csv", Input).focus()
        await pilot.press(*str(csv_path), "enter")
        await settle(pilot)
        # The preview rejects a row whose zone create would reject.
        assert "rejected row 3: 'Mars/Base': timezone: unknown time zone" in preview_text(app)
        form.query_one("#form-send-at", Input).value = "2030-06-03 09:00"
        form.query_one("#form-local-time", Checkbox).value = True
        form.query_one("#form-timezone", Input).value = "Mars"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert [n.message for n in app._notifications if n.severity == "error"][-1].startswith(
            "Time zone: unknown time zone 'Mars'"
        )
        form.query_one("#form-timezone", Input).value = "WIT"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(pilot)
    blast = await Blast.get(name="local promo")
    assert blast.local_time == "2030-06-03T09:00" and blast.timezone == "Asia/Jayapura" and blast.total == 2
    zones = sorted(cast(list[str], await Recipient.filter(blast_id=blast.id).values_list("zone", flat=True)))
    assert zones == ["Asia/Jakarta", "Asia/Jakarta"]  # the WIB cell, and phonenumbers' zone for the number


async def test_the_edit_dialog_changes_a_drafts_quiet_hours_and_schedules_it(
    db: Settings, tmp_path: Path
) -> None:
    await seed_template()
    csv_path = write_csv(tmp_path / "r.csv", ROWS, header="phone,1,2,timezone")
    settings = db.model_copy(update={"BLAST_RATE_LIMIT": 1.0})
    created = await blasts.create_blast(
        settings=settings,
        name="draft",
        template="order_update",
        language="en_US",
        recipients=csv_path,
        draft=True,
        quiet_hours="off",
    )
    app = build_app(settings, clock=frozen_clock)
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EditBlastModal)
        app.screen.query_one("#quiet_hours", Input).value = "21:00-08:00"
        app.screen.query_one("#send_at", Input).value = BEFORE_NINE
        app.screen.query_one("#schedule", Checkbox).value = True
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, EditBlastModal)
        messages = [n.message for n in app._notifications]
        assert any("quiet hours: about 2 recipients will wait until 08:00 WITA" in m for m in messages), (
            messages
        )
    blast = await Blast.get(id=created.id)
    assert blast.status == B.SCHEDULED and blast.quiet_hours == "21:00-08:00" and blast.due_times is not None
    assert await Recipient.filter(blast_id=blast.id, due_at=None).count() == 0


async def test_turning_quiet_hours_on_reads_the_file_again_for_the_zones(
    db: Settings, tmp_path: Path
) -> None:
    await seed_template()
    # No timezone column: the zones come from the numbers (Asia/Jakarta), looked up only when asked.
    csv_path = write_csv(tmp_path / "r.csv", [row.rsplit(",", 1)[0] for row in ROWS])
    app = build_app(db.model_copy(update={"BLAST_RATE_LIMIT": 1.0}), clock=frozen_clock)
    async with app.run_test(size=(120, 60)) as pilot:
        app.open_blast_form()
        await settle(pilot)
        form = app.screen
        assert isinstance(form, BlastFormScreen)
        form.query_one("#form-csv", Input).focus()
        await pilot.press(*str(csv_path), "enter")
        await settle(pilot)
        assert form.preview is not None and form.preview.zones is None
        form.query_one("#form-send-at", Input).value = "2030-06-03T20:59:59+07:00"
        form.query_one("#form-quiet-hours", Input).value = "21:00-08:00"
        await settle(pilot)
        assert form.preview is not None and form.preview.zones == {"Asia/Jakarta": 3}
        assert "quiet hours: about 2 recipients will wait until 08:00 WIB" in preview_text(app)
