"""The shared limiter never grants more than the rate in any 1 s window, evenly spaced, across clients."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from daemon.rate_limit import RateLimiter
from shared.config import Settings


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """Most events in any half-open window [t, t + window_s); 1 µs of float noise at epoch scale is forgiven."""
    window_s -= 1e-6
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def _client(limiter: RateLimiter, until: float, out: list[float]) -> None:
    while time.monotonic() < until:
        grant = await limiter.acquire(7)
        if grant.count == 0:
            await asyncio.sleep(grant.wait_s)
            continue
        # Redis's clock: the grants themselves, without the clients' round-trip noise.
        out.extend(grant.server_now_s + d for d in grant.delays())


async def test_three_clients_share_the_rate_without_burst(settings: Settings, redis_client: Any) -> None:
    key = settings.key("rate", "test")
    limiters = [RateLimiter(redis_client, key, 300.0) for _ in range(3)]
    grants: list[float] = []
    until = time.monotonic() + 2.5
    await asyncio.gather(*(_client(lim, until, grants) for lim in limiters))
    grants.sort()
    assert max_in_window(grants) <= 300
    # Evenly spaced: consecutive grants are 1/rate apart (to the microsecond rounding of the script).
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) > (1 / 300) - 2e-6
    assert len(grants) >= 300 * 2.5 * 0.9


async def test_slow_down_halves_and_recovers(settings: Settings, redis_client: Any) -> None:
    limiter = RateLimiter(redis_client, settings.key("rate", "slow"), 100.0)
    await limiter.acquire(1)
    factor = await limiter.slow_down()
    assert 0.45 < factor <= 0.5
    grant = await limiter.acquire(1)
    assert grant.count == 0 and grant.wait_s > 0.5  # no slot during the throttle pause
    await asyncio.sleep(1.1)
    grant = await limiter.acquire(1)
    assert 0.5 <= grant.factor < 1.0  # climbing back


async def test_a_slowed_limiter_still_grants_full_sized_asks(settings: Settings, redis_client: Any) -> None:
    """Asking for at least N slots while a throttle slowed the rate so far that N never fit in the horizon would
    grant nothing, ever: the least asked for is capped by what the horizon holds at the current rate."""
    key = settings.key("rate", "least")
    limiter = RateLimiter(redis_client, key, 120.0, horizon_s=0.1)
    secs, micros = await redis_client.time()
    now_us = int(secs) * 1_000_000 + int(micros)
    # slowed to 5 % (an interval of 167 ms, longer than the 100 ms horizon), as a throttle storm leaves it
    await redis_client.hset(key, mapping={"tat": now_us, "factor": "0.05", "fat": now_us})
    grant = await limiter.acquire(12, least=9)
    assert grant.count == 1  # one slot fits the horizon at this rate: it is granted, not refused forever
    assert grant.factor == pytest.approx(0.05, abs=0.01)  # the slowdown stood (it recovers over 20 s)
