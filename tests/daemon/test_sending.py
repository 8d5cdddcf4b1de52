"""The daemon sends scheduled blasts on time, once per recipient, within the rate limit (in-process daemon)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from shared.fake_graph.server import FakeGraph
from shared.services.transitions import utcnow
from shared.status import BlastStatus
from tests.daemon.conftest import (
    assert_counters_exact,
    blast_of,
    make_blast,
    status_is,
    wait_for,
)


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """Most events in any sliding window of `window_s` seconds."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_scheduled_blast_fires_on_time_once_each(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, redis_client: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=100.0)
    await start_daemon(settings)
    send_at = utcnow() + timedelta(seconds=2)
    blast_id = await make_blast(settings, 300, send_at=send_at)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="blast COMPLETED")
    received = fake.received
    first = min(m.received_at for m in received)
    assert first - send_at.timestamp() < 1.0, "first message more than 1 s late"
    per_phone = Counter(m.to for m in received)
    assert len(per_phone) == 300 and set(per_phone.values()) == {1}
    assert max_in_window([m.received_at for m in received]) <= 100 * 1.05
    blast = await blast_of(blast_id)
    assert blast.n_sent == 300 and blast.started_at is not None and blast.finished_at is not None
    await assert_counters_exact(blast_id)
