"""The wake-up of a running local-time blast's next zone: its chunks are queued GROUP_AHEAD_S before the zone's
time, lease their first page and wait for the time on the clock; the zone's first request leaves from its time on,
never before (in-process daemon, fake). The delay itself is measured in bench/bench_zone_wake.py, not asserted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from daemon.chunk_runner import AHEAD_PREFIX
from shared.clock import utcnow
from shared.events import publish
from shared.fake_graph.server import FakeGraph
from shared.services import live
from shared.status import BlastStatus
from tests.daemon.conftest import assert_counters_exact, make_local_blast, status_is, wait_for


async def test_the_next_zone_is_sent_by_chunks_queued_ahead_and_never_before_its_time(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any
) -> None:
    settings = cloud_settings(BLAST_RATE_LIMIT=500.0)
    await start_daemon(settings)
    first = utcnow() + timedelta(seconds=1.5)
    due = [first, first + timedelta(seconds=2)]
    blast_id, group_of = await make_local_blast(settings, [("+08:00", due[0], 10), ("+07:00", due[1], 10)])
    await publish(settings, "scheduled", blast_id=blast_id)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=30, what="blast COMPLETED")
    times = [m.received_at for m in fake.received if group_of[str(m.to)] == 1]
    assert len(times) == 10 and min(times) >= due[1].timestamp(), "the second zone left before its time"

    async def sent_by_a_chunk_queued_ahead() -> bool:  # its record is written just after the blast finishes
        jobs = await live.recent_jobs(settings, limit=100)
        ahead = [j for j in jobs if j.key.startswith(f"blast:{blast_id}:chunk:{AHEAD_PREFIX}")]
        return sum(int(j.detail.get("requests", 0)) for j in ahead) >= 1

    await wait_for(sent_by_a_chunk_queued_ahead, timeout_s=10, what="the zone sent by a chunk queued ahead")
    await assert_counters_exact(blast_id)
