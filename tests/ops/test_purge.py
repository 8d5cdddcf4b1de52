"""The personal-data purge: finished blasts older than N days lose phone numbers, parameters and message ids;
counters, statuses and the blast stay; active and recent blasts are never touched."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from click.testing import CliRunner

from daemon.__main__ import cli
from shared.clock import utcnow
from shared.config import Settings
from shared.db import database
from shared.errors import InvalidTransition
from shared.models import AuditLog, Blast, Recipient, WebhookEvent
from shared.services.blast_actions import retry_blast
from shared.services.purge import AUDIT_ACTION, is_purged, purge_personal_data, purged_count
from shared.status import BlastStatus, RecipientStatus
from tests.conftest import reset_database
from tests.factories import make_blast, make_template

COUNTER_FIELDS = (
    "total",
    "n_pending",
    "n_sending",
    "n_sent",
    "n_delivered",
    "n_read",
    "n_failed",
    "n_cancelled",
    "n_skipped",
    "n_unknown",
)


async def _finished_blast(name: str, status: BlastStatus, days_ago: float, n: int = 6) -> Blast:
    """A blast whose recipients went out (delivered, read, failed), finished `days_ago` days ago."""
    template = await make_template(name=f"tpl_{name}")
    blast = await make_blast(template, n=n, status=status, name=name)
    ids = [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id")]
    await Recipient.filter(id__in=ids[:3]).update(
        status=RecipientStatus.DELIVERED, wamid="wamid.X", wa_id="62812000"
    )
    await Recipient.filter(id__in=ids[3:5]).update(status=RecipientStatus.READ, wamid="wamid.Y")
    await Recipient.filter(id__in=ids[5:]).update(
        status=RecipientStatus.FAILED, error_code=131026, error_text="Message undeliverable"
    )
    finished = utcnow() - timedelta(days=days_ago)
    await Blast.filter(id=blast.id).update(
        n_pending=0, n_delivered=3, n_read=2, n_failed=n - 5, finished_at=finished
    )
    return await Blast.get(id=blast.id)


async def _counters(blast_id: int) -> tuple[int, ...]:
    blast = await Blast.get(id=blast_id)
    return tuple(getattr(blast, f) for f in COUNTER_FIELDS)


async def test_purge_keeps_counts_and_removes_numbers_and_parameters(db: Settings) -> None:
    old = await _finished_blast("old", BlastStatus.COMPLETED, days_ago=100)
    old_cancelled = await _finished_blast("old_cancelled", BlastStatus.CANCELLED, days_ago=45)
    recent = await _finished_blast("recent", BlastStatus.COMPLETED, days_ago=5)
    # An old blast that is still active (PAUSED for weeks, or PROCESSING) is never purged.
    paused = await _finished_blast("paused", BlastStatus.PAUSED, days_ago=100)
    processing = await _finished_blast("processing", BlastStatus.PROCESSING, days_ago=100)
    before = {b.id: await _counters(b.id) for b in (old, old_cancelled, recent, paused, processing)}
    statuses_before = dict(await Recipient.all().values_list("id", "status"))
    await WebhookEvent.create(received_at=utcnow() - timedelta(days=60), body="{}", processed_at=utcnow())
    await WebhookEvent.create(received_at=utcnow() - timedelta(days=60), body="{}")  # not applied yet: kept

    dry = await purge_personal_data(older_than_days=30, actor="tester", dry_run=True)
    assert dry.dry_run and dry.recipients == 12 and dry.blast_ids == [old.id, old_cancelled.id]
    assert await Recipient.filter(phone__startswith="purged:").count() == 0

    result = await purge_personal_data(older_than_days=30, actor="tester")
    assert result.blast_ids == [old.id, old_cancelled.id]
    assert result.recipients == 12
    assert result.webhook_events == 1
    assert await WebhookEvent.all().count() == 1

    for blast in (old, old_cancelled):
        rows = await Recipient.filter(blast_id=blast.id).order_by("id")
        assert all(is_purged(r.phone) and r.phone == f"purged:{r.id}" for r in rows)
        assert all(r.params == {} and r.wamid is None and r.wa_id is None for r in rows)
        assert await purged_count(blast.id) == 6
    # Statuses and every counter stay: reports and totals do not change.
    assert dict(await Recipient.all().values_list("id", "status")) == statuses_before
    assert {b: await _counters(b) for b in before} == before
    failed = await Recipient.get(blast_id=old.id, status=RecipientStatus.FAILED)
    assert failed.error_code == 131026  # aggregate error reasons stay
    for blast in (recent, paused, processing):
        rows = await Recipient.filter(blast_id=blast.id)
        assert all(r.phone.startswith("+62812") and r.params for r in rows)
    entries = await AuditLog.filter(action=AUDIT_ACTION).order_by("id")
    assert [(e.entity_id, e.actor, e.detail["recipients"]) for e in entries] == [
        (str(old.id), "tester", 6),
        (str(old_cancelled.id), "tester", 6),
    ]

    again = await purge_personal_data(older_than_days=30, actor="tester")
    assert again.recipients == 0 and again.blast_ids == []
    assert await AuditLog.filter(action=AUDIT_ACTION).count() == 2


async def test_a_purged_blast_cannot_be_retried(db: Settings) -> None:
    old = await _finished_blast("old", BlastStatus.COMPLETED, days_ago=100)
    await purge_personal_data(older_than_days=30, actor="tester")
    with pytest.raises(InvalidTransition, match="purged"):
        await retry_blast(old.id, settings=db)
    assert await Recipient.filter(blast_id=old.id, status=RecipientStatus.PENDING).count() == 0


def test_the_cli_counts_first_and_purges_with_yes(env_settings: Settings) -> None:
    reset_database(env_settings)

    async def seed() -> int:
        async with database(env_settings):
            return (await _finished_blast("old", BlastStatus.COMPLETED, days_ago=100)).id

    async def purged(blast_id: int) -> int:
        async with database(env_settings):
            return await purged_count(blast_id)

    blast_id = asyncio.run(seed())
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--older-than", "30"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would purge 6 recipients of 1 blast finished before ")
    assert "run again with --yes" in dry.stderr
    assert asyncio.run(purged(blast_id)) == 0
    done = runner.invoke(cli, ["purge", "--older-than", "30", "--yes"])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("purged 6 recipients of 1 blast ")
    assert asyncio.run(purged(blast_id)) == 6
    assert runner.invoke(cli, ["purge", "--older-than", "0"]).exit_code == 2  # at least one day
