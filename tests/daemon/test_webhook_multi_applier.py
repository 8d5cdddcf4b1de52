"""Several appliers on one inbox (several daemons behind the proxy): each takes its own batches, every event is
applied exactly once, the blast's counters stay exact; and the dispatch point for other webhook fields."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from typing import Any

from shared.config import Settings
from shared.events import EVENTS_CHANNEL, redis_client
from shared.models import Blast, Recipient, Sender, WebhookEvent
from shared.services import webhooks
from shared.status import RecipientStatus as R
from tests.conftest import USE_POSTGRES
from tests.daemon.webhook_helpers import WebhookEnv, apply_all, envelope, make_blast, status_payload, wenv

__all__ = ["wenv"]

N_RECIPIENTS = 120


async def test_two_appliers_racing_apply_each_event_once(wenv: WebhookEnv) -> None:
    blast, rows = await make_blast(
        [(f"+62812{i:07d}", R.SENT, f"wamid.race{i}") for i in range(N_RECIPIENTS)]
    )
    # delivered + read for each message, and one in four delivered again (Meta retries); reads overtake.
    items = [(f"wamid.race{i}", "delivered", 1750263773 + i) for i in range(N_RECIPIENTS)]
    items += [(f"wamid.race{i}", "read", 1750263783 + i) for i in range(N_RECIPIENTS)]
    items += [(f"wamid.race{i}", "delivered", 1750263773 + i) for i in range(0, N_RECIPIENTS, 4)]
    random.Random(7).shuffle(items)
    for wamid, status, ts in items:
        await webhooks.store_event(json.dumps(status_payload(wamid, status, ts=ts)))

    stop = asyncio.Event()
    reports: dict[str, list[webhooks.ApplyReport]] = {"a": [], "b": []}

    def recorder(name: str) -> Any:
        def on_batch(report: webhooks.ApplyReport) -> None:
            reports[name].append(report)

        return on_batch

    # Small batches, so that both appliers are busy at once for many rounds.
    appliers = [
        asyncio.create_task(
            webhooks.run_applier(
                stop, settings=wenv.settings, batch=7, batch_max=7, idle_s=0.01, on_batch=recorder(name)
            )
        )
        for name in ("a", "b")
    ]
    try:
        for _ in range(1000):
            if await webhooks.backlog() == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*appliers)

    assert await webhooks.backlog() == 0
    # Each event was claimed and applied once: one attempt each, counted once across both appliers.
    attempts = [e.attempts for e in await WebhookEvent.all()]
    assert sorted(set(attempts)) == [1] and len(attempts) == len(items)
    everything = reports["a"] + reports["b"]
    assert sum(r.events for r in everything) == len(items)
    assert sum(r.statuses for r in everything) == len(items)
    assert sum(r.applied + r.ignored for r in everything) == len(items)
    if USE_POSTGRES:  # SQLite has one connection: the appliers take turns rather than racing
        assert reports["a"] and reports["b"], "both appliers should have taken batches"
    # Forward only, counters exact.
    statuses = {str(s) for s in await Recipient.filter(blast=blast).values_list("status", flat=True)}
    assert statuses == {str(R.READ)}
    final = await Blast.get(id=blast.id)
    assert (final.n_sent, final.n_delivered, final.n_read) == (0, 0, N_RECIPIENTS)
    assert len(rows) == N_RECIPIENTS


async def test_a_registered_field_handler_gets_its_events_after_the_commit(wenv: WebhookEnv) -> None:
    seen: list[tuple[Mapping[str, Any], Settings]] = []

    async def on_quality(value: Mapping[str, Any], settings: Settings) -> None:
        seen.append((value, settings))

    value = {"display_phone_number": "15550001111", "event": "DOWNGRADE", "current_limit": "TIER_1K"}
    real = webhooks.FIELD_HANDLERS["phone_number_quality_update"]
    webhooks.FIELD_HANDLERS["phone_number_quality_update"] = on_quality
    try:
        await wenv.post_ok(envelope("phone_number_quality_update", value))
        await wenv.post_ok(envelope("some_future_field", {"x": 1}))  # no handler: counted, dropped
        report = await apply_all(wenv.settings)
    finally:
        webhooks.FIELD_HANDLERS["phone_number_quality_update"] = real
    assert report.events == 2
    assert [v for v, _ in seen] == [value]
    assert seen[0][1] is wenv.settings
    assert await webhooks.backlog() == 0


async def test_a_failing_field_handler_does_not_block_the_event(wenv: WebhookEnv) -> None:
    async def broken(value: Mapping[str, Any], settings: Settings) -> None:
        raise RuntimeError("boom")

    real = webhooks.FIELD_HANDLERS["phone_number_quality_update"]
    webhooks.FIELD_HANDLERS["phone_number_quality_update"] = broken
    try:
        await wenv.post_ok(envelope("phone_number_quality_update", {"event": "FLAGGED"}))
        report = await apply_all(wenv.settings)
    finally:
        webhooks.FIELD_HANDLERS["phone_number_quality_update"] = real
    assert report.events == 1
    assert await webhooks.backlog() == 0


async def test_a_throughput_upgrade_webhook_raises_the_numbers_rate_in_every_daemon(wenv: WebhookEnv) -> None:
    """The signed `phone_number_quality_update` webhook, through the inbox and the applier: the sender's level
    is stored and the daemons are told at once (`sender_changed`), so their limiters for that number follow."""
    await Sender.create(
        phone_number_id="200000000000007", waba_id="w1", token_env="T7", display_phone="15550001117"
    )
    pubsub = redis_client(wenv.settings).pubsub()
    await pubsub.subscribe(wenv.settings.key(EVENTS_CHANNEL))
    try:
        value = {"display_phone_number": "15550001117", "event": "THROUGHPUT_UPGRADE"}
        await wenv.post_ok(envelope("phone_number_quality_update", value))
        await apply_all(wenv.settings)
        row = await Sender.get(phone_number_id="200000000000007")
        assert row.throughput_level == "HIGH"
        kinds = []
        for _ in range(50):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is not None:
                kinds.append(json.loads(msg["data"]).get("event"))
            if "sender_changed" in kinds:
                break
        assert "sender_changed" in kinds
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
