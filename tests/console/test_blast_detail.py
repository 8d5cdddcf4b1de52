"""The blast detail: recipient pages in id order across statuses (keyset pages per status), errors and audit read
only when their tab is shown, and a refresh that rewrites changed cells only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from textual.widgets import DataTable, Static, TabbedContent

from console.screens.blast_detail import BlastDetailScreen
from shared.config import Settings
from shared.models import AuditLog, Blast, Recipient
from shared.services import recipients
from shared.status import BlastStatus, RecipientStatus
from tests.console.conftest import SEND_AT, AppFactory, seed_template, settle, text_of

B = BlastStatus
R = RecipientStatus
CYCLE = (R.SENT, R.FAILED, R.PENDING, R.DELIVERED)


async def _mixed_blast(n: int = 250) -> Blast:
    """A blast whose recipients' statuses interleave (SENT, FAILED, PENDING, DELIVERED, SENT, …)."""
    t = await seed_template()
    blast = await Blast.create(
        name="mixed", template=t, status=B.PROCESSING, send_at=SEND_AT, total=n, created_by="tester"
    )
    await Recipient.bulk_create(
        [
            Recipient(
                blast_id=blast.id,
                phone=f"+62812{i:08d}",
                params={"1": "a", "2": "b"},
                row=i + 1,
                status=CYCLE[i % 4],
                error_code=131026 if CYCLE[i % 4] == R.FAILED else None,
                error_text="Message undeliverable" if CYCLE[i % 4] == R.FAILED else None,
            )
            for i in range(n)
        ]
    )
    return blast


async def _ids(blast: Blast) -> list[int]:
    return [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id").only("id")]


async def test_pages_merge_statuses_in_id_order(db: Settings) -> None:
    blast = await _mixed_blast()
    ids = await _ids(blast)
    first = await recipients.page_recipients(blast.id, limit=100)
    assert [r.id for r in first.rows] == ids[:100]
    assert first.next_after_id == ids[99]
    second = await recipients.page_recipients(blast.id, after_id=ids[99], limit=100)
    assert [r.id for r in second.rows] == ids[100:200]
    last = await recipients.page_recipients(blast.id, after_id=ids[199], limit=100)
    assert [r.id for r in last.rows] == ids[200:] and last.next_after_id is None
    failed = await recipients.page_recipients(blast.id, statuses=[R.FAILED], limit=10)
    assert [r.id for r in failed.rows] == ids[1::4][:10]
    two = await recipients.page_recipients(blast.id, statuses=[R.FAILED, R.SENT], limit=7)
    assert [r.id for r in two.rows] == sorted(ids[0::4] + ids[1::4])[:7]
    assert await recipients.page_before(blast.id, before_id=ids[200], limit=100) == ids[99]
    assert await recipients.page_before(blast.id, before_id=ids[100], limit=100) == 0


async def test_errors_by_code_reads_a_bounded_number_of_failures(db: Settings) -> None:
    blast = await _mixed_blast()  # 63 FAILED, code 131026
    await Recipient.filter(id__in=(await _ids(blast))[1:40:4]).update(error_code=131049, error_text="Z")
    groups = await recipients.errors_by_code(blast.id)
    assert [(g.code, g.count) for g in groups] == [(131026, 53), (131049, 10)]
    assert groups[0].sample == "Message undeliverable" and groups[1].sample == "Z"
    assert "not on WhatsApp" in groups[0].meaning
    bounded = await recipients.errors_by_code(blast.id, scan_max=12)  # the first 12 failures only
    assert [(g.code, g.count) for g in bounded] == [(131049, 10), (131026, 2)]


async def test_detail_pages_tabs_and_in_place_refresh(db: Settings, make_app: AppFactory) -> None:
    blast = await _mixed_blast()
    ids = await _ids(blast)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = BlastDetailScreen(blast.id)
        await app.push_screen(screen)
        await settle(pilot)
        table = screen.query_one("#recipient-table", DataTable)
        assert [int(str(k.value)) for k in table.rows] == ids[:100]
        # Errors and audit are neither composed nor read until their tab is shown.
        assert not screen.query("#error-table") and not screen.query("#audit-table")

        cleared: list[int] = []
        original_clear = table.clear

        def counting_clear(*args: Any, **kwargs: Any) -> Any:
            cleared.append(1)
            return original_clear(*args, **kwargs)

        table.clear = counting_clear  # type: ignore[method-assign]  # a spy on this one table
        await Recipient.filter(id=ids[2]).update(status=R.SENT)
        screen.reload()
        await settle(pilot)
        assert cleared == []  # same rows: only the changed cell was rewritten
        assert str(table.get_cell(str(ids[2]), table.ordered_columns[2].key)) == "SENT"

        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert [int(str(k.value)) for k in table.rows] == ids[100:200]
        assert cleared == [1]  # other rows: replaced

        await AuditLog.create(actor="tester", action="edit", entity="blast", entity_id=str(blast.id))
        await pilot.press("v")
        await settle(pilot)
        assert screen.query_one(TabbedContent).active == "errors"
        errors = screen.query_one("#error-table", DataTable)
        assert errors.row_count == 1 and str(errors.get_row_at(0)[1]) == "63"  # 63 FAILED, one code
        await pilot.press("v")
        await settle(pilot)
        assert screen.query_one("#audit-table", DataTable).row_count == 1


async def test_a_local_time_blast_shows_each_zone_due_at_sent_and_waiting(
    db: Settings, make_app: AppFactory
) -> None:
    blast = await _mixed_blast(8)
    due = [SEND_AT, SEND_AT + timedelta(hours=1)]
    for i, rid in enumerate(await _ids(blast)):
        await Recipient.filter(id=rid).update(
            zone=("Asia/Jayapura", "Asia/Makassar")[i % 2], due_at=due[i % 2]
        )
    await Blast.filter(id=blast.id).update(
        local_time="2030-01-01T09:00", due_times=[d.isoformat() for d in due]
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = BlastDetailScreen(blast.id)
        await app.push_screen(screen)
        await settle(pilot)
        panel = screen.query_one("#zones", Static)
        assert panel.display
        lines = [" ".join(line.split()) for line in text_of(panel).splitlines() if line.strip()]
        assert lines[0].startswith("2030-01-01 09:00 local time in due at sent waiting")
        # statuses cycle SENT, FAILED, PENDING, DELIVERED: Jayapura gets SENT and PENDING, Makassar FAILED and
        # DELIVERED
        assert lines[1].startswith("Asia/Jayapura") and lines[1].endswith("2 2 0")
        assert lines[2].startswith("Asia/Makassar") and lines[2].endswith("2 0 2")


async def test_an_ordinary_blast_shows_no_zones(db: Settings, make_app: AppFactory) -> None:
    blast = await _mixed_blast(4)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = BlastDetailScreen(blast.id)
        await app.push_screen(screen)
        await settle(pilot)
        assert not screen.query_one("#zones", Static).display


async def test_a_blast_with_quiet_hours_shows_how_many_are_held_and_the_next_release(
    db: Settings, make_app: AppFactory
) -> None:
    blast = await _mixed_blast(8)
    release = datetime(2099, 12, 9, 0, 0, tzinfo=UTC)  # 08:00 WITA
    for i, rid in enumerate(await _ids(blast)):
        await Recipient.filter(id=rid).update(zone="Asia/Makassar", due_at=release if i % 4 == 2 else SEND_AT)
    await Blast.filter(id=blast.id).update(
        send_at=SEND_AT, quiet_hours="21:00-08:00", due_times=[SEND_AT.isoformat(), release.isoformat()]
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = BlastDetailScreen(blast.id)
        await app.push_screen(screen)
        await settle(pilot)
        panel = screen.query_one("#quiet", Static)
        assert panel.display
        # statuses cycle SENT, FAILED, PENDING, DELIVERED: the 2 PENDING rows are the ones due at 08:00 WITA
        assert (
            text_of(panel).strip()
            == "quiet hours 21:00-08:00 · held by quiet hours: 2, next release 08:00 WITA"
        )
        assert not screen.query_one("#zones", Static).display
