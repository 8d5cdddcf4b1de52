"""The one state machine: every allowed and forbidden transition, forward-only delivery, exact counters."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest
from tortoise.functions import Count

from shared.clock import utcnow
from shared.config import Settings
from shared.errors import InvalidTransition, NotFound
from shared.models import AuditLog, Blast, Recipient
from shared.services import delivery, transitions
from shared.services.delivery import DeliveryUpdate
from shared.services.transitions import SendOutcome
from shared.status import BLAST_TRANSITIONS, RECIPIENT_TRANSITIONS, BlastStatus, RecipientStatus
from tests.factories import make_blast, make_template

B, R = BlastStatus, RecipientStatus


async def assert_counters_exact(blast_id: int) -> None:
    blast = await Blast.get(id=blast_id)
    rows = (
        await Recipient.filter(blast_id=blast_id)
        .annotate(n=Count("id"))
        .group_by("status")
        .values_list("status", "n")
    )
    actual = {R(s).value.lower(): n for s, n in rows}
    expected = {k: v for k, v in blast.counts().items() if v}
    assert expected == actual
    assert sum(blast.counts().values()) == blast.total


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(BlastStatus, BlastStatus)))
async def test_blast_transition_table(db: Settings, src: BlastStatus, dst: BlastStatus) -> None:
    template = await make_template()
    blast = await make_blast(template, n=1, status=src)
    if (src, dst) in BLAST_TRANSITIONS:
        assert await transitions.transition_blast(blast.id, dst, actor="tester", action="test")
        assert (await Blast.get(id=blast.id)).status == dst
        entry = await AuditLog.get(entity="blast", entity_id=str(blast.id))
        assert entry.actor == "tester" and entry.detail["to"] == dst.value
    else:
        with pytest.raises(InvalidTransition, match=f"blast {blast.id} is (already )?{src.value}"):
            await transitions.transition_blast(blast.id, dst, actor="tester", action="test")
        assert (await Blast.get(id=blast.id)).status == src
        assert not await AuditLog.filter(entity_id=str(blast.id)).exists()


async def test_transition_of_missing_blast(db: Settings) -> None:
    with pytest.raises(NotFound, match="blast 999 does not exist"):
        await transitions.transition_blast(999, B.CANCELLED, actor="t", action="cancel")


async def test_only_one_of_two_racing_claims_wins(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=1, status=B.SCHEDULED)
    first = await transitions.transition_blast(
        blast.id, B.PROCESSING, actor="a", action="start", sources=[B.SCHEDULED]
    )
    with pytest.raises(InvalidTransition):
        await transitions.transition_blast(
            blast.id, B.PROCESSING, actor="b", action="start", sources=[B.SCHEDULED]
        )
    assert first


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(RecipientStatus, RecipientStatus)))
async def test_recipient_transition_table(db: Settings, src: RecipientStatus, dst: RecipientStatus) -> None:
    template = await make_template()
    blast = await make_blast(template, n=3)
    if src != R.PENDING:
        await Recipient.filter(blast_id=blast.id).update(status=src)
        await Blast.filter(id=blast.id).update(n_pending=0, **{f"n_{src.value.lower()}": 3})
    if (src, dst) in RECIPIENT_TRANSITIONS:
        moved = await transitions.move_recipients(blast.id, dst, sources=[src])
        assert moved == {src: 3}
        await assert_counters_exact(blast.id)
    else:
        with pytest.raises(InvalidTransition):
            await transitions.move_recipients(blast.id, dst, sources=[src])
        assert await Recipient.filter(blast_id=blast.id, status=src).count() == 3


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [
        (R.SENT, "delivered", R.DELIVERED),
        (R.SENT, "read", R.READ),  # read may skip delivered
        (R.DELIVERED, "read", R.READ),
        (R.READ, "delivered", None),  # never downgrade
        (R.READ, "sent", None),
        (R.DELIVERED, "sent", None),
        (R.DELIVERED, "delivered", None),  # duplicate
        (R.SENT, "failed", R.FAILED),  # failed after sent applies
        (R.DELIVERED, "failed", None),  # failed after delivered: logged, not applied
        (R.READ, "failed", None),
        (R.SENDING, "delivered", R.DELIVERED),  # webhook before the send result
        (R.UNKNOWN, "sent", R.SENT),  # reconciles an unknown attempt
        (R.UNKNOWN, "failed", R.FAILED),
        (R.SENT, "played", None),
        (R.DELIVERED, "played", R.READ),
        (R.PENDING, "delivered", None),
        (R.CANCELLED, "read", None),
        (R.SENT, "bogus", None),
    ],
)
def test_delivery_targets_only_move_forward(
    current: RecipientStatus, event: str, expected: RecipientStatus | None
) -> None:
    if current == R.SENT and event == "played":
        expected = R.READ
    assert delivery.delivery_target(current, event) == expected


async def test_send_results_never_downgrade_a_webhook_status(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=2)
    r1, r2 = await Recipient.filter(blast_id=blast.id).order_by("id")
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING], values={"lease_owner": "w1"})
    # the delivered webhook for r1 overtakes its send result
    result = await delivery.apply_delivery_updates(
        [DeliveryUpdate(wamid="wamid.1", status="delivered", at=utcnow(), recipient_id=r1.id)]
    )
    assert result.applied == 1
    changed = await transitions.record_send_outcomes(
        [
            SendOutcome(r1.id, blast.id, R.SENT, wamid="wamid.1"),
            SendOutcome(r2.id, blast.id, R.SENT, wamid="wamid.2"),
        ],
        lease_owner="w1",
    )
    assert changed == 1
    r1 = await Recipient.get(id=r1.id)
    assert r1.status == R.DELIVERED and r1.wamid == "wamid.1"
    assert (await Recipient.get(id=r2.id)).status == R.SENT
    await assert_counters_exact(blast.id)


async def test_a_stale_lease_cannot_write_results(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=1)
    (r,) = await Recipient.filter(blast_id=blast.id)
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING], values={"lease_owner": "w2"})
    assert (
        await transitions.record_send_outcomes(
            [SendOutcome(r.id, blast.id, R.SENT, wamid="w")], lease_owner="w1"
        )
        == 0
    )
    assert (await Recipient.get(id=r.id)).status == R.SENDING


async def test_reverse_order_statuses_end_at_read_and_duplicates_apply_once(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=1)
    (r,) = await Recipient.filter(blast_id=blast.id)
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING])
    await transitions.record_send_outcomes([SendOutcome(r.id, blast.id, R.SENT, wamid="wamid.x")])
    t0 = utcnow()
    events = [
        DeliveryUpdate("wamid.x", s, t0 + timedelta(seconds=i))
        for i, s in enumerate(["sent", "delivered", "read"])
    ]
    total_applied = 0
    for event in reversed(events + events):
        total_applied += (await delivery.apply_delivery_updates([event])).applied
    assert total_applied == 1  # read applied; delivered and sent are older, duplicates ignored
    assert (await Recipient.get(id=r.id)).status == R.READ
    await assert_counters_exact(blast.id)


async def test_unmatched_statuses_are_returned_for_later(db: Settings) -> None:
    result = await delivery.apply_delivery_updates([DeliveryUpdate("wamid.nobody", "sent", utcnow())])
    assert result.applied == 0 and len(result.unmatched) == 1


async def test_counters_equal_buckets_after_mixed_updates(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=200)
    rng = random.Random(7)
    ids = [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id")]
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING], ids=ids[:150])
    outcomes = []
    for i, rid in enumerate(ids[:150]):
        to = rng.choice([R.SENT, R.SENT, R.FAILED, R.PENDING, R.UNKNOWN])
        outcomes.append(
            SendOutcome(rid, blast.id, to, wamid=f"wamid.{i}" if to == R.SENT else None, error_code=131026)
        )
    await transitions.record_send_outcomes(outcomes)
    updates = [
        DeliveryUpdate(f"wamid.{i}", rng.choice(["sent", "delivered", "read", "failed"]), utcnow())
        for i in range(150)
        for _ in range(2)
    ]
    await delivery.apply_delivery_updates(updates)
    await transitions.move_recipients(blast.id, R.SKIPPED, sources=[R.PENDING], ids=ids[150:160])
    await transitions.move_recipients(blast.id, R.CANCELLED, sources=[R.PENDING])
    await transitions.move_recipients(blast.id, R.PENDING, sources=[R.FAILED, R.UNKNOWN])
    await assert_counters_exact(blast.id)


async def test_claims_lease_in_id_order_from_a_cursor_and_mark_only_their_own(db: Settings) -> None:
    """A claim leases the lowest claimable ids above its cursor, never a row another holds; only the lease holder
    marks its rows SENDING, with the counters."""
    from shared.services import claims

    template = await make_template()
    blast = await make_blast(template, n=10)
    ids = [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id")]
    first = await claims.claim_page(blast.id, "a", 3)
    assert [r.id for r in first] == ids[:3]
    above = await claims.claim_page(blast.id, "b", 3, after_id=ids[5])
    assert [r.id for r in above] == ids[6:9]
    rest = await claims.claim_page(blast.id, "c", 10)  # from the start: what nobody holds
    assert [r.id for r in rest] == ids[3:6] + ids[9:]
    assert await claims.mark_sending(blast.id, "a", [*ids[:3], ids[6]], timeout_s=5) == set(ids[:3])
    await assert_counters_exact(blast.id)
    assert (await Blast.get(id=blast.id)).n_sending == 3
