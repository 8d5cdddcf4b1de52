"""POST/GET /webhook through real HTTP: handshake, signatures, forward-only statuses, reconciliation,
opt-outs, template updates, body limit, failure-rate auto-pause."""

from __future__ import annotations

import logging
import time

import pytest

from shared.models import Blast, OrphanStatus, Recipient, Template, WebhookEvent
from shared.parsing.callback_data import callback_data
from shared.services import suppression, webhooks
from shared.services.transitions import SendOutcome, record_send_outcomes
from shared.services.webhooks.report import merge as merge_reports
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.daemon.webhook_helpers import (
    VERIFY_TOKEN,
    WebhookEnv,
    apply_all,
    envelope,
    inbound_button,
    inbound_text,
    make_blast,
    preferences,
    recipient,
    status_payload,
    wenv,
)

__all__ = ["wenv"]
R = RecipientStatus


async def test_handshake_answers_the_challenge_only_for_the_right_token(wenv: WebhookEnv) -> None:
    ok = await wenv.client.get(
        "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert ok.status == 200
    assert await ok.text() == "1158201444"
    assert ok.content_type == "text/plain"
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ):
        bad = await wenv.client.get("/webhook", params=params)
        assert bad.status == 403


async def test_unsigned_and_wrongly_signed_posts_are_refused_and_store_nothing(wenv: WebhookEnv) -> None:
    _, (r,) = await make_blast([("+6281234567890", R.SENT, "wamid.A")])
    payload = status_payload("wamid.A", "delivered")
    unsigned = await wenv.post(payload, signed=False)
    assert unsigned.status == 401
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    wrong = await wenv.client.post(
        "/webhook", data=body, headers={"X-Hub-Signature-256": webhooks.sign("another-secret", body)}
    )
    assert wrong.status == 403
    garbage = await wenv.client.post("/webhook", data=body, headers={"X-Hub-Signature-256": "sha256=zz"})
    assert garbage.status == 403
    assert await WebhookEvent.all().count() == 0
    await apply_all(wenv.settings)
    assert (await recipient(r.id)).status == R.SENT

    await wenv.post_ok(payload)
    assert await WebhookEvent.all().count() == 1  # stored before the 200
    await apply_all(wenv.settings)
    assert (await recipient(r.id)).status == R.DELIVERED


async def test_statuses_in_reverse_order_end_at_read(wenv: WebhookEnv) -> None:
    blast, (r,) = await make_blast([("+6281234567890", R.SENT, "wamid.B")])
    for status, ts in (("read", 30), ("delivered", 20), ("sent", 10)):
        await wenv.post_ok(status_payload("wamid.B", status, ts=1750263700 + ts))
        await apply_all(wenv.settings)  # one batch per post: the worst order for the writer
    row = await recipient(r.id)
    assert row.status == R.READ
    assert row.read_at is not None
    blast = await Blast.get(id=blast.id)
    assert (blast.n_read, blast.n_delivered, blast.n_sent) == (1, 0, 0)


async def test_duplicates_are_applied_once(wenv: WebhookEnv) -> None:
    blast, _ = await make_blast([("+6281234567890", R.SENT, "wamid.C")])
    for _ in range(3):
        await wenv.post_ok(status_payload("wamid.C", "delivered"))
    report = await apply_all(wenv.settings)
    assert (report.applied, report.ignored) == (1, 2)
    await wenv.post_ok(status_payload("wamid.C", "delivered"))
    await apply_all(wenv.settings)
    blast = await Blast.get(id=blast.id)
    assert (blast.n_delivered, blast.n_sent, blast.total) == (1, 0, 1)


async def test_failed_after_delivered_is_logged_not_applied(
    wenv: WebhookEnv, caplog: pytest.LogCaptureFixture
) -> None:
    _, (r,) = await make_blast([("+6281234567890", R.DELIVERED, "wamid.D")])
    await wenv.post_ok(status_payload("wamid.D", "failed", error_code=131026))
    with caplog.at_level(logging.WARNING):
        await apply_all(wenv.settings)
    assert (await recipient(r.id)).status == R.DELIVERED
    assert "failed status after DELIVERED" in caplog.text


async def test_status_before_the_send_result_reconciles_through_callback_data(wenv: WebhookEnv) -> None:
    blast, (r,) = await make_blast([("+6281234567890", R.SENDING, None)])
    await wenv.post_ok(status_payload("wamid.E", "delivered", callback=callback_data(blast.id, r.id, 1)))
    await apply_all(wenv.settings)
    row = await recipient(r.id)
    assert (row.status, row.wamid) == (R.DELIVERED, "wamid.E")
    # the send result written afterwards never downgrades it
    await record_send_outcomes(
        [SendOutcome(recipient_id=r.id, blast_id=blast.id, to=R.SENT, wamid="wamid.E")]
    )
    assert (await recipient(r.id)).status == R.DELIVERED
    blast = await Blast.get(id=blast.id)
    assert (blast.n_delivered, blast.n_sending, blast.n_sent) == (1, 0, 0)


async def test_status_without_match_is_kept_and_applied_once_the_send_result_arrives(
    wenv: WebhookEnv,
) -> None:
    blast, (r,) = await make_blast([("+6281234567890", R.SENDING, None)])
    await wenv.post_ok(status_payload("wamid.F", "read"))  # no callback data: nothing to match yet
    report = await apply_all(wenv.settings)
    assert report.orphaned == 1
    assert await OrphanStatus.all().count() == 1
    await record_send_outcomes(
        [SendOutcome(recipient_id=r.id, blast_id=blast.id, to=R.SENT, wamid="wamid.F")]
    )
    deadline = time.monotonic() + 15
    while (await recipient(r.id)).status != R.READ:
        assert time.monotonic() < deadline, "the parked status was never applied"
        await webhooks.retry_orphans(wenv.settings)
    assert await OrphanStatus.all().count() == 0


async def test_unknown_recipient_is_reconciled_by_sent_and_by_failed(wenv: WebhookEnv) -> None:
    blast, (a, b) = await make_blast(
        [("+6281234567890", R.UNKNOWN, None), ("+6281234567891", R.UNKNOWN, None)]
    )
    await wenv.post_ok(status_payload("wamid.G1", "sent", callback=callback_data(blast.id, a.id, 1)))
    await wenv.post_ok(
        status_payload("wamid.G2", "failed", callback=callback_data(blast.id, b.id, 1), error_code=131026)
    )
    await apply_all(wenv.settings)
    ra, rb = await recipient(a.id), await recipient(b.id)
    assert (ra.status, ra.wamid) == (R.SENT, "wamid.G1")
    assert (rb.status, rb.error_code) == (R.FAILED, 131026)
    assert rb.error_text and "131026" in rb.error_text
    blast = await Blast.get(id=blast.id)
    assert (blast.n_unknown, blast.n_sent, blast.n_failed) == (0, 1, 1)


async def test_stop_and_131050_suppress_the_number_for_the_next_blast(wenv: WebhookEnv) -> None:
    blast, (r, _) = await make_blast(
        [("+6281234567890", R.SENT, "wamid.H"), ("+6281234567891", R.SENT, "wamid.I")]
    )
    await wenv.post_ok(status_payload("wamid.H", "failed", error_code=131050))
    await wenv.post_ok(inbound_text("6281234567891", "  berhenti! "))
    await wenv.post_ok(inbound_button("6281234567892", "STOP_PROMO"))
    await wenv.post_ok(preferences("6281234567893", "stop"))
    await wenv.post_ok(inbound_text("6281234567894", "stop sending me that promo please"))  # not a keyword
    await apply_all(wenv.settings)
    assert (await recipient(r.id)).status == R.FAILED
    phones = [f"+628123456789{i}" for i in range(5)]
    assert await suppression.is_suppressed(phones) == set(phones[:4])
    page = await suppression.list_suppressions()
    assert {e.source for e in page.entries} == {
        "opt_out_131050",
        "keyword",
        "quick_reply",
        "user_preferences",
    }
    # an opt-out is not a failure of the blast
    assert (await Blast.get(id=blast.id)).status == BlastStatus.PROCESSING
    # Meta's "resume" preference lifts its own opt-out only
    await wenv.post_ok(preferences("6281234567893", "resume"))
    await apply_all(wenv.settings)
    assert "+6281234567893" not in await suppression.is_suppressed(phones)


async def test_oversized_body_is_refused(wenv: WebhookEnv) -> None:
    big = envelope("messages", {"statuses": [], "padding": "x" * (wenv.settings.BLAST_WEBHOOK_MAX_BODY + 10)})
    resp = await wenv.post(big)
    assert resp.status == 413
    assert await WebhookEvent.all().count() == 0


async def test_template_status_update_pauses_its_blasts(wenv: WebhookEnv) -> None:
    blast, _ = await make_blast([("+6281234567890", R.PENDING, None)], blast_status=BlastStatus.SCHEDULED)
    await wenv.post_ok(
        envelope(
            "message_template_status_update",
            {
                "event": "PAUSED",
                "message_template_id": 9001,
                "message_template_name": "promo",
                "message_template_language": "id",
                "reason": "LOW_QUALITY",
            },
        )
    )
    report = await apply_all(wenv.settings)
    assert (await Template.get(name="promo")).status == TemplateStatus.PAUSED
    paused = await Blast.get(id=blast.id)
    assert paused.status == BlastStatus.PAUSED
    assert report.paused_blasts == [blast.id]


async def test_webhook_failures_trip_the_failure_rate_pause(wenv: WebhookEnv) -> None:
    rows = [(f"+62812345678{i:02d}", R.SENT, f"wamid.K{i}") for i in range(10)]
    blast, _ = await make_blast(rows)
    for i in range(10):
        await wenv.post_ok(status_payload(f"wamid.K{i}", "failed", error_code=131049))
    await apply_all(wenv.settings)
    blast = await Blast.get(id=blast.id)
    assert blast.n_failed == 10
    assert blast.status == BlastStatus.PAUSED
    assert blast.last_error and "failure rate" in blast.last_error


async def test_malformed_and_foreign_bodies_are_answered_and_change_nothing(wenv: WebhookEnv) -> None:
    _, (r,) = await make_blast([("+6281234567890", R.SENT, "wamid.L")])
    assert (await wenv.post(None, raw=b"{not json")).status == 400
    assert (await wenv.post({"object": "page", "entry": "nope"})).status == 200
    await wenv.post_ok(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "statuses": [{"id": 5, "status": "delivered"}, "x", {"status": "weird"}]
                            },
                        }
                    ]
                }
            ],
        }
    )
    await apply_all(wenv.settings)
    assert (await recipient(r.id)).status == R.SENT
    assert await WebhookEvent.filter(processed_at__isnull=True).count() == 0
    assert await Recipient.all().count() == 1


def test_merged_applier_reports_keep_every_count() -> None:
    """The applier adds the orphan pass's report to the batch's: no count may be dropped on the way."""
    import dataclasses

    counts = [f.name for f in dataclasses.fields(webhooks.ApplyReport) if f.type in ("int", int)]
    assert {"reconciled", "expired"} <= set(counts)
    total, batch = webhooks.ApplyReport(), webhooks.ApplyReport()
    for name in counts:
        setattr(total, name, 1)
        setattr(batch, name, 2)
    merge_reports(total, batch)
    assert {name: getattr(total, name) for name in counts} == dict.fromkeys(counts, 3)
