"""Provides the shared rate limiter of a sender number: a GCRA with zero burst in one Redis Lua script.

Every daemon asks the same Redis key for slots, so the combined rate of all daemons never exceeds the limit.
Grants are evenly spaced (one every 1/rate s): a grant of k slots returns the delay of the first slot and the
interval, and the theoretical arrival time (TAT) moves k intervals on. A caller may reserve slots at most
`horizon_s` ahead, so that a crashed daemon wastes little capacity and no daemon hoards slots.

On throughput errors (130429) the limiter slows down (the rate is multiplied by a factor that halves, at most
once per second, down to MIN_FACTOR) and recovers linearly to the full rate over `recover_s` seconds.
Times come from Redis (TIME), so the clocks of the daemons do not matter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.config import Settings

#: Lowest share of the configured rate the limiter slows down to.
MIN_FACTOR = 0.05
#: Seconds over which a slowed limiter climbs back linearly from 0 to the full rate.
RECOVER_S = 20.0
#: How far ahead a daemon may hold slots: one grant is about this much sending (the SENDING recipients that a
#: crash turns UNKNOWN, beyond the requests in flight, are at most this many slots' worth).
GRANT_HORIZON_S = 0.1
#: After a throttling error nobody gets a slot for this long (Meta: retry after ~1 s).
THROTTLE_PAUSE_S = 1.0

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local recover = tonumber(ARGV[4])
local audit = ARGV[5]
local least = math.min(want, tonumber(ARGV[6]))
local h = redis.call('HMGET', KEYS[1], 'tat', 'factor', 'fat')
local tat = tonumber(h[1]) or now
local factor = tonumber(h[2]) or 1
local fat = tonumber(h[3]) or now
if factor < 1 then
  factor = math.min(1, factor + (now - fat) / recover)
end
-- whole microseconds, rounded up: exact in doubles (no drift), so N+1 grants never fit in one second
local interval = math.ceil(1000000 / (rate * factor))
-- never ask for more than the horizon can hold at the current (maybe slowed) rate, or nothing is ever granted
least = math.min(least, math.floor(horizon / interval) + 1)
if tat < now then tat = now end
local ahead = tat - now
local n = 0
local fits = -1
if ahead <= horizon then fits = math.floor((horizon - ahead) / interval) + 1 end
if fits >= least then
  n = math.min(want, fits)
  if audit == '1' then
    redis.call('RPUSH', KEYS[2], string.format('%.0f:%.0f:%d', tat, interval, n))
    redis.call('LTRIM', KEYS[2], -200000, -1)
    redis.call('EXPIRE', KEYS[2], 3600)
  end
  tat = tat + n * interval
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'factor', string.format('%.6f', factor),
  'fat', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], 3600000)
return {n, string.format('%.0f', ahead), string.format('%.0f', interval), string.format('%.6f', factor),
  string.format('%.0f', now)}
"""

_SLOW_DOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local min_factor = tonumber(ARGV[1])
local pause = tonumber(ARGV[2])
local recover = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tat', 'factor', 'fat', 'slowed')
local tat = tonumber(h[1]) or now
local factor = tonumber(h[2]) or 1
local fat = tonumber(h[3]) or now
local slowed = tonumber(h[4]) or 0
if factor < 1 then
  factor = math.min(1, factor + (now - fat) / recover)
end
if now - slowed >= 1000000 then
  factor = math.max(min_factor, factor / 2)
  slowed = now
  if tat < now + pause then tat = now + pause end
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'factor', string.format('%.6f', factor),
  'fat', string.format('%.0f', now), 'slowed', string.format('%.0f', slowed))
redis.call('PEXPIRE', KEYS[1], 3600000)
return string.format('%.6f', factor)
"""

_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat')) or now
local until_ = now + tonumber(ARGV[1])
if tat < until_ then
  redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', until_))
end
redis.call('PEXPIRE', KEYS[1], 3600000)
return 1
"""


@dataclass(frozen=True, slots=True)
class Grant:
    """Slots granted by the limiter.

    Attributes:
        count: slots granted (0: none now; wait `wait_s` and ask again).
        first_delay_s: seconds from now until the first slot.
        interval_s: seconds between consecutive slots.
        wait_s: when nothing was granted, how long until a slot falls within the horizon.
        factor: the current slowdown factor (1.0 = full rate).
        server_now_s: Redis's clock at the grant (epoch seconds), to audit grants across clients.
    """

    count: int
    first_delay_s: float
    interval_s: float
    wait_s: float
    factor: float
    server_now_s: float = 0.0

    def delays(self) -> list[float]:
        """Seconds from the moment of the grant at which each granted slot may be used."""
        return [self.first_delay_s + i * self.interval_s for i in range(self.count)]


class RateLimiter:
    """The limiter of one sender number, shared through Redis by every daemon.

    Args:
        redis: the Redis client.
        key: the Redis key of this sender number's limiter.
        rate: messages per second.
        horizon_s: how far ahead slots may be reserved.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        key: str,
        rate: float,
        *,
        horizon_s: float = 0.05,
        audit_key: str | None = None,
    ) -> None:
        self.redis = redis
        self.key = key
        self.audit_key = audit_key
        self.rate = rate
        self.horizon_s = max(horizon_s, 1.0 / rate) if rate > 0 else horizon_s
        self._acquire = redis.register_script(_ACQUIRE)
        self._slow = redis.register_script(_SLOW_DOWN)
        self._hold = redis.register_script(_HOLD)
        self._last_slow = 0.0

    @classmethod
    def for_sender(cls, settings: Settings, redis: aioredis.Redis, sender_id: str | None) -> RateLimiter:
        """The limiter keyed by the sender's phone number id (the sandbox and unset ids share "default")."""
        key = settings.key("rate", sender_id or "default")
        audit = settings.key("rate-audit", sender_id or "default") if settings.BLAST_RATE_AUDIT else None
        return cls(redis, key, settings.BLAST_RATE_LIMIT, horizon_s=GRANT_HORIZON_S, audit_key=audit)

    async def acquire(self, want: int, *, least: int = 1) -> Grant:
        """Ask for up to `want` slots (at least 1 is asked for), and for none unless `least` of them fit in the
        horizon now (so that a caller gets full grants instead of the one or two slots that free up between
        calls; other daemons' grants leave room for `least` soon, and `wait_s` says when).

        Raises:
            redis.exceptions.RedisError: Redis unreachable (the caller stops sending).
        """
        want = max(1, want)
        least = max(1, min(least, want))
        audit = "1" if self.audit_key else "0"
        raw = await self._acquire(
            keys=[self.key, self.audit_key or self.key],
            args=[self.rate, want, int(self.horizon_s * 1_000_000), int(RECOVER_S * 1_000_000), audit, least],
        )
        count = int(raw[0])
        ahead_s = float(raw[1]) / 1_000_000
        interval_s = float(raw[2]) / 1_000_000
        factor = float(raw[3])
        server_now_s = float(raw[4]) / 1_000_000
        if count == 0:
            least = min(least, int(self.horizon_s / interval_s) + 1)  # as the script capped it
            wait_s = ahead_s + (least - 1) * interval_s - self.horizon_s
            return Grant(0, 0.0, interval_s, max(0.001, wait_s), factor, server_now_s)
        return Grant(count, ahead_s, interval_s, 0.0, factor, server_now_s)

    async def slow_down(self) -> float:
        """Halve the rate (at most once per second across all daemons) after a throughput error.

        Returns:
            The new slowdown factor.
        """
        now = time.monotonic()
        if now - self._last_slow < 0.2:  # the many in-flight 130429s of one burst: one call is enough
            return -1.0
        self._last_slow = now
        raw = await self._slow(
            keys=[self.key], args=[MIN_FACTOR, int(THROTTLE_PAUSE_S * 1_000_000), int(RECOVER_S * 1_000_000)]
        )
        return float(raw)

    async def hold(self, seconds: float) -> None:
        """Grant no slot to anyone for `seconds` (a number under upgrade, 131057), across all daemons.

        Raises:
            redis.exceptions.RedisError: Redis unreachable.
        """
        await self._hold(keys=[self.key], args=[int(seconds * 1_000_000)])

    async def audited_grants(self) -> list[float]:
        """Every audited grant, as Redis epoch seconds (BLAST_RATE_AUDIT)."""
        if not self.audit_key:
            return []
        out: list[float] = []
        for raw in await self.redis.lrange(self.audit_key, 0, -1):
            first, interval, n = (
                int(x) for x in (raw.decode() if isinstance(raw, bytes) else raw).split(":")
            )
            out.extend((first + i * interval) / 1_000_000 for i in range(n))
        return out

    async def reset(self) -> None:
        """Forget the state (tests and benches)."""
        await self.redis.delete(self.key)


async def sleep_until(deadline: float, stop: asyncio.Event | None = None) -> bool:
    """Sleep until the monotonic `deadline`; returns False early if `stop` is set."""
    delay = deadline - time.monotonic()
    if stop is None:
        if delay > 0:
            await asyncio.sleep(delay)
        return True
    if stop.is_set():
        return False
    if delay <= 0:
        return True
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        return True
    return False
