"""A late status of an earlier send attempt is matched by its callback data's attempt number ("try=N"): it never
changes a recipient that a newer attempt has settled, but it does prove a re-queued recipient's message went out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.clock import utcnow
from shared.config import Settings
from shared.models import Recipient
from shared.services import delivery, transitions
from shared.services.delivery import DeliveryUpdate, match_by_callback
from shared.services.webhooks import parse_body
from shared.status import RecipientStatus
from tests.factories import make_blast, make_template
from tests.shared.test_state_machine import assert_counters_exact

R = RecipientStatus


def _update(status: str, attempt: int | None, wamid: str = "wamid.old", rid: int = 1) -> DeliveryUpdate:
    return DeliveryUpdate(wamid=wamid, status=status, at=utcnow(), recipient_id=rid, attempt=attempt)


@pytest.mark.parametrize(
    ("row", "wamid", "attempts", "status", "attempt", "verdict"),
    [
        (R.SENDING, None, 1, "sent", 1, "match"),  # the attempt in flight
        (R.UNKNOWN, "wamid.a1", 2, "sent", 2, "match"),  # latest attempt; an older wamid on the row
        (R.PENDING, None, 1, "sent", 1, "match"),  # operator retried the UNKNOWN: it went out after all
        (R.UNKNOWN, None, 2, "delivered", 1, "match"),  # an earlier attempt went out
        (R.PENDING, None, 2, "read", 1, "match"),
        (R.UNKNOWN, None, 2, "failed", 1, "stale"),  # the older failure says nothing of the newer attempt
        (R.SENT, "wamid.a2", 2, "delivered", 1, "stale"),  # the newer attempt is accepted: untouched
        (R.READ, "wamid.a2", 2, "sent", 1, "stale"),
        (R.FAILED, None, 2, "sent", 1, "stale"),
        (R.SENDING, None, 2, "sent", 1, "later"),  # wait for the newer attempt's result
        (R.UNKNOWN, None, 1, "sent", 2, "later"),  # an attempt the row never made
        (R.UNKNOWN, None, 1, "sent", None, "match"),  # no attempt in the data: matched as before
        (R.SENT, "wamid.other", 1, "sent", None, "later"),
    ],
)
def test_callback_match_rule(
    row: RecipientStatus, wamid: str | None, attempts: int, status: str, attempt: int | None, verdict: str
) -> None:
    assert match_by_callback(row, wamid, attempts, _update(status, attempt)) == verdict


def test_the_attempt_is_read_from_the_callback_data() -> None:
    status = {
        "id": "wamid.1",
        "status": "sent",
        "timestamp": "1700000000",
        "recipient_id": "6281200000001",
        "biz_opaque_callback_data": "blast=3;rcpt=7;try=2",
    }
    body = {"entry": [{"changes": [{"field": "messages", "value": {"statuses": [status]}}]}]}
    parsed = parse_body(json.dumps(body), keywords=frozenset(), payloads=frozenset())
    (item,) = parsed.statuses
    assert item.update.recipient_id == 7 and item.update.attempt == 2


async def _recipient(blast_id: int, status: RecipientStatus, **values: Any) -> Recipient:
    row = await Recipient.filter(blast_id=blast_id).order_by("id").first()
    assert row is not None
    await transitions.move_recipients(blast_id, R.SENDING, sources=[R.PENDING], ids=[row.id])
    if status != R.SENDING:
        await transitions.move_recipients(blast_id, status, sources=[R.SENDING], ids=[row.id])
    await Recipient.filter(id=row.id).update(**values)
    return await Recipient.get(id=row.id)


async def test_an_older_attempts_delivered_leaves_the_newer_sent_alone(db: Settings) -> None:
    blast = await make_blast(await make_template(), n=1)
    row = await _recipient(blast.id, R.SENT, attempts=2, wamid="wamid.a2")
    result = await delivery.apply_delivery_updates([_update("delivered", 1, "wamid.a1", row.id)])
    assert (result.applied, result.ignored, result.unmatched) == (0, 1, [])
    row = await Recipient.get(id=row.id)
    assert row.status == R.SENT and row.wamid == "wamid.a2"
    await assert_counters_exact(blast.id)


async def test_an_older_attempts_sent_proves_a_requeued_recipient_went_out(db: Settings) -> None:
    blast = await make_blast(await make_template(), n=1)
    # Attempt 1 timed out (UNKNOWN), the operator retried: PENDING, about to be sent again.
    row = await _recipient(blast.id, R.UNKNOWN, attempts=1)
    await transitions.move_recipients(blast.id, R.PENDING, sources=[R.UNKNOWN], ids=[row.id])
    result = await delivery.apply_delivery_updates([_update("sent", 1, "wamid.a1", row.id)])
    assert result.applied == 1
    row = await Recipient.get(id=row.id)
    assert row.status == R.SENT and row.wamid == "wamid.a1" and row.sent_at is not None
    await assert_counters_exact(blast.id)


async def test_an_older_attempts_failure_does_not_settle_the_newer_unknown(db: Settings) -> None:
    blast = await make_blast(await make_template(), n=1)
    row = await _recipient(blast.id, R.UNKNOWN, attempts=2)
    result = await delivery.apply_delivery_updates([_update("failed", 1, "wamid.a1", row.id)])
    assert result.applied == 0 and result.ignored == 1
    assert (await Recipient.get(id=row.id)).status == R.UNKNOWN
    # … but its own attempt's status does, even with attempt 1's wamid still on the row.
    await Recipient.filter(id=row.id).update(wamid="wamid.a1")
    result = await delivery.apply_delivery_updates([_update("delivered", 2, "wamid.a2", row.id)])
    row = await Recipient.get(id=row.id)
    assert result.applied == 1 and row.status == R.DELIVERED and row.wamid == "wamid.a2"
    await assert_counters_exact(blast.id)


async def test_an_older_attempts_status_waits_while_the_newer_is_in_flight(db: Settings) -> None:
    blast = await make_blast(await make_template(), n=1)
    row = await _recipient(blast.id, R.SENDING, attempts=2)
    update = _update("sent", 1, "wamid.a1", row.id)
    result = await delivery.apply_delivery_updates([update])
    assert result.unmatched == [update]
    assert (await Recipient.get(id=row.id)).status == R.SENDING
