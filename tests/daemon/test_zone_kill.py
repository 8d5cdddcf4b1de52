"""kill -9 at a zone boundary: a real `blast-daemon` process sends a three-zone local-time blast (zones due a few
seconds apart) to the fake Graph API and is SIGKILLed just as the second zone's group starts sending; a restarted
daemon finishes the blast. Every recipient reached the fake at most once, and exactly once unless it is UNKNOWN
(its request was in flight at the kill: never re-sent silently); no zone went out before its time."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.rate_limit import GRANT_HORIZON_S
from daemon.results import FLUSH_MIN_GAP_S
from shared.clock import utcnow
from shared.events import publish
from shared.fake_graph.server import FakeGraph
from shared.models import Recipient
from shared.status import BlastStatus, RecipientStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_local_blast, status_is, wait_for
from tests.daemon.test_processes import Daemons, _alive

#: One daemon process at a time: it runs on SQLite too.
pytestmark = pytest.mark.slow

ZONES = ("+09:00", "+08:00", "+07:00")
PER_ZONE = 400
GAP_S = 4.0


async def test_sigkill_as_a_zone_starts_then_restart_sends_each_recipient_once(
    db: Any, cloud_settings: Any, fake: FakeGraph, tmp_path: Path, redis_client: Any
) -> None:
    rate, latency_s = 200.0, 0.05
    settings = cloud_settings(BLAST_RATE_LIMIT=rate)
    fake.configure(latency_ms=latency_s * 1000, jitter_ms=20.0)
    daemons = Daemons(tmp_path)
    try:
        first = daemons.start(settings, "first")
        await wait_for(lambda: _alive(settings, 1), timeout_s=30, what="first daemon up")
        n = PER_ZONE * len(ZONES)
        start = utcnow() + timedelta(seconds=1)
        due = [start + timedelta(seconds=GAP_S * z) for z in range(len(ZONES))]
        # what `blast create --local-time` writes, zones seconds apart
        groups = [(zone, due[z], PER_ZONE) for z, zone in enumerate(ZONES)]
        blast_id, zone_of_phone = await make_local_blast(settings, groups)
        await publish(settings, "scheduled", blast_id=blast_id)

        async def second_zone_started() -> bool:
            return sum(1 for m in fake.received if zone_of_phone.get(str(m.to)) == 1) >= 5

        await wait_for(
            second_zone_started, timeout_s=30, what="the second zone's first requests", every_s=0.01
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = Counter(zone_of_phone[str(m.to)] for m in fake.received)
        assert at_kill[1] < PER_ZONE, "the kill came after the second zone was sent"
        daemons.start(settings, "second")
        await wait_for(
            lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=90, what="completed after restart"
        )
    finally:
        daemons.stop_all()
    blast = await blast_of(blast_id)
    arrivals = Counter(str(m.to) for m in fake.received)
    assert max(arrivals.values()) == 1, "a recipient was sent twice"
    assert blast.n_sent + blast.n_unknown == n and blast.n_failed == 0
    unknown = {
        str(p).lstrip("+")
        for p in await Recipient.filter(blast_id=blast_id, status=RecipientStatus.UNKNOWN).values_list(
            "phone", flat=True
        )
    }
    # exactly once, or UNKNOWN (its request may or may not have left at the kill)
    assert all(arrivals[p] == 1 for p in zone_of_phone if p not in unknown)
    assert blast.n_unknown <= rate * (latency_s + 0.02 + GRANT_HORIZON_S + FLUSH_MIN_GAP_S) + 5, (
        blast.n_unknown
    )
    for z in range(len(ZONES)):
        first_at = min(m.received_at for m in fake.received if zone_of_phone[str(m.to)] == z)
        assert first_at >= due[z].timestamp(), f"zone {ZONES[z]} sent before its time"
    await assert_counters_exact(blast_id)
