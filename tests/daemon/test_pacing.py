"""Pacing at the daemon: a slot is a time to leave, never a permission to leave late; the slot feeder's grants keep
the limiter's spacing on this host's clock; the pool holds no more than BLAST_MAX_IN_FLIGHT jobs."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.pacing import LATE_S, RequestPool, SlotFeeder
from daemon.rate_limit import RateLimiter
from shared.config import Settings
from tests.daemon.test_rate_limit import max_in_window


class Job:
    def __init__(self, at: float, log: list[tuple[str, float, float]], hold_s: float = 0.0) -> None:
        self.at, self.log, self.hold_s = at, log, hold_s

    async def fire(self) -> None:
        self.log.append(("fired", self.at, time.monotonic()))
        if self.hold_s:
            await asyncio.sleep(self.hold_s)

    def missed(self) -> None:
        self.log.append(("missed", self.at, time.monotonic()))


async def _drain(pool: RequestPool) -> None:
    deadline = time.monotonic() + 5
    while pool.held and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert pool.held == 0


async def test_jobs_fire_at_their_slot_and_a_missed_slot_is_given_back() -> None:
    pool = RequestPool(10)
    log: list[tuple[str, float, float]] = []
    now = time.monotonic()
    for at in (now + 0.03, now - 0.05):  # on time; already 50 ms late
        pool.submit(at, Job(at, log))
    await _drain(pool)
    await pool.aclose()
    by_kind = {kind: (at, t) for kind, at, t in log}
    assert set(by_kind) == {"fired", "missed"}
    at, fired = by_kind["fired"]
    assert fired >= at  # never early
    assert by_kind["missed"][0] == now - 0.05


async def test_a_stalled_loop_never_fires_slots_late_on_top_of_on_time_ones() -> None:
    """Twenty slots 1 ms apart; the loop then stalls for 30 ms. The slots that passed meanwhile by more than
    LATE_S come back as missed; every request that leaves does so within LATE_S of its slot."""
    pool = RequestPool(100)
    log: list[tuple[str, float, float]] = []
    start = time.monotonic() + 0.005
    for i in range(20):
        pool.submit(start + i * 0.001, Job(start + i * 0.001, log))
    await asyncio.sleep(0)  # workers start and wait for their slots
    time.sleep(0.03)
    await _drain(pool)
    await pool.aclose()
    missed = [at for kind, at, _ in log if kind == "missed"]
    fired = [(at, t) for kind, at, t in log if kind == "fired"]
    assert len(missed) + len(fired) == 20
    assert missed, "the stall made some slots late"
    assert all(t - at <= LATE_S + 0.002 for at, t in fired), [round(t - at, 4) for at, t in fired]
    assert pool.missed == len(missed)


async def test_at_most_max_jobs_are_in_flight_and_a_job_kept_waiting_is_given_back() -> None:
    """Three requests in flight at most; a fourth job may wait for a worker (the prefetch), but one kept waiting
    past its slot is given back instead of leaving late; the pool says when it has room again."""
    pool = RequestPool(3)
    assert pool.prefetch == 1
    log: list[tuple[str, float, float]] = []
    in_flight = [0, 0]  # now, most

    class Tracked(Job):
        async def fire(self) -> None:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            try:
                await super().fire()
            finally:
                in_flight[0] -= 1

    now = time.monotonic()
    for _ in range(4):
        pool.submit(now, Tracked(now, log, hold_s=0.05))
    assert pool.room == 0
    waiting = asyncio.create_task(pool.wait_for_room(2))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await asyncio.wait_for(waiting, 1.0)
    await _drain(pool)
    assert in_flight[1] == 3 and pool.workers == 3
    assert [kind for kind, _, _ in log].count("missed") == 1  # the fourth waited 50 ms for a worker
    await pool.aclose()


async def test_two_daemons_slots_stay_within_the_rate(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    """Two feeders (two daemons) on one limiter: the slot times they hand out, on this host's clock, never put
    more than the rate in any 1 s window, and each feeder's own slots never overlap (one grant after another)."""
    rate = 400.0
    key = settings.key("rate", "pacing")
    feeders = [
        SlotFeeder(RateLimiter(redis_client, key, rate, horizon_s=0.1), room=lambda: 1000, max_jobs=1000,
                   wait_for_room=_no_wait)
        for _ in range(2)
    ]  # fmt: skip
    slots: list[list[float]] = [[], []]
    until = time.monotonic() + 1.6

    async def take(i: int) -> None:
        while time.monotonic() < until:
            got = await feeders[i].take(17)
            slots[i].extend(got)
            await asyncio.sleep(0.002)

    await asyncio.gather(take(0), take(1))
    both = sorted(slots[0] + slots[1])
    assert len(both) >= rate  # they got the rate between them
    assert max_in_window(both) <= rate * 1.02  # exact on Redis's clock; mapped here within a loop hiccup
    for own in slots:
        assert all(b > a for a, b in itertools.pairwise(own)), "a feeder's slots overlap"
    assert all(f.grants < len(s) / 10 for f, s in zip(feeders, slots, strict=True)), (
        "grants are not full-size"
    )


async def _no_wait(n: int, stop: Any = None) -> None:
    return None


def test_redis_time_maps_to_local_time_through_the_least_delayed_answer() -> None:
    feeder = SlotFeeder.__new__(SlotFeeder)
    feeder._offset = feeder._offset_at = 0.0
    # Redis says 1000.000; the answer was read at local 50.030 (30 ms late), then one read 1 ms after Redis's time
    first = feeder._local(1000.0, 50.030)
    second = feeder._local(1000.1, 50.101)
    # the second is less delayed: the offset drops at once
    assert first == pytest.approx(50.030) and second == pytest.approx(50.101)
    # a late reading (a busy loop) does not move the mapping later, beyond clock drift
    third = feeder._local(1000.2, 50.250)
    assert abs(third - 50.201) < 1e-3
