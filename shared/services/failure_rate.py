"""Provides the failure-rate window of each blast: its last BLAST_FAILURE_RATE_WINDOW results in Redis, so
that a blast whose share of failures passes BLAST_FAILURE_RATE_THRESHOLD pauses itself.

Both the sender (send results) and the webhook receiver (failed status webhooks) feed it with `note_results`;
the caller that gets `tripped` pauses the blast with `pause_reason(...)`.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from shared.config import Settings
from shared.events import redis_client

#: Pushes ok ("0") and failed ("1") marks, keeps the newest N, returns (failed, length).
_NOTE = """
local ok = tonumber(ARGV[1])
local bad = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local marks = {}
for i = 1, ok do marks[#marks + 1] = '0' end
for i = 1, bad do marks[#marks + 1] = '1' end
local start = 1
while start <= #marks do
  local stop = math.min(#marks, start + 999)
  redis.call('LPUSH', KEYS[1], unpack(marks, start, stop))
  start = stop + 1
end
redis.call('LTRIM', KEYS[1], 0, window - 1)
redis.call('EXPIRE', KEYS[1], 7 * 86400)
local items = redis.call('LRANGE', KEYS[1], 0, window - 1)
local failed = 0
for _, v in ipairs(items) do if v == '1' then failed = failed + 1 end end
return {failed, #items}
"""


@dataclass(frozen=True, slots=True)
class FailureWindow:
    failed: int
    size: int
    window: int
    threshold: float

    @property
    def rate(self) -> float:
        return self.failed / self.size if self.size else 0.0

    @property
    def tripped(self) -> bool:
        """The window is full and its failure share passed the threshold."""
        return self.size >= self.window and self.rate > self.threshold


def window_key(settings: Settings, blast_id: int) -> str:
    return settings.key("failwin", blast_id)


async def note_results(
    settings: Settings, blast_id: int, *, ok: int = 0, failed: int = 0, client: aioredis.Redis | None = None
) -> FailureWindow:
    """Add results to a blast's window.

    Args:
        settings: the deployment (window size and threshold).
        blast_id: the blast.
        ok: results that went well (sent).
        failed: failures (send errors, unknown outcomes, failed status webhooks).
        client: a Redis client (default: the process's).

    Raises:
        redis.exceptions.RedisError: Redis unreachable.
    """
    window = settings.BLAST_FAILURE_RATE_WINDOW
    r = client or redis_client(settings)
    if ok <= 0 and failed <= 0:
        return FailureWindow(0, 0, window, settings.BLAST_FAILURE_RATE_THRESHOLD)
    # Only the newest `window` marks matter: cap what is pushed.
    failed = min(failed, window)
    ok = min(ok, window - failed)
    raw = await r.eval(_NOTE, 1, window_key(settings, blast_id), ok, failed, window)
    return FailureWindow(int(raw[0]), int(raw[1]), window, settings.BLAST_FAILURE_RATE_THRESHOLD)


async def reset_window(settings: Settings, blast_id: int, client: aioredis.Redis | None = None) -> None:
    """Forget a blast's results (done when it pauses itself, so a resume starts afresh)."""
    r = client or redis_client(settings)
    await r.delete(window_key(settings, blast_id))


def pause_reason(w: FailureWindow) -> str:
    """The operator-facing reason of a failure-rate pause."""
    return (
        f"failure rate {w.rate:.0%} over the last {w.size} results passed BLAST_FAILURE_RATE_THRESHOLD "
        f"({w.threshold:.0%}): check the recipients' errors and the template, then resume"
    )


# One script per flush of send results: the live send-rate counters (what `live.count_sent` writes) and every
# blast's failure-rate window, for all the blasts of the flush.
#   KEYS: sent:{sec}, sending_blasts, then per blast: sent:{blast}:{sec}, failwin:{blast}
#   ARGV: rate-key ttl, window, then per blast: blast id, requests, ok, failed
#   returns per blast: failed, length of its window (0, 0 when it got no ok/failed marks)
_FEED = """
local ttl = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local total = 0
local out = {}
for i = 1, (#KEYS - 2) / 2 do
  local a = 2 + (i - 1) * 4
  local req, ok, bad = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local rate_key, win_key = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  if req > 0 then
    redis.call('INCRBY', rate_key, req)
    redis.call('EXPIRE', rate_key, ttl)
    redis.call('SADD', KEYS[2], ARGV[a + 1])
    total = total + req
  end
  local failed, size = 0, 0
  if ok + bad > 0 then
    bad = math.min(bad, window)
    ok = math.min(ok, window - bad)
    local marks = {}
    for j = 1, ok do marks[#marks + 1] = '0' end
    for j = 1, bad do marks[#marks + 1] = '1' end
    local start = 1
    while start <= #marks do
      local stop = math.min(#marks, start + 999)
      redis.call('LPUSH', win_key, unpack(marks, start, stop))
      start = stop + 1
    end
    redis.call('LTRIM', win_key, 0, window - 1)
    redis.call('EXPIRE', win_key, 7 * 86400)
    local items = redis.call('LRANGE', win_key, 0, window - 1)
    for _, v in ipairs(items) do if v == '1' then failed = failed + 1 end end
    size = #items
  end
  out[#out + 1] = failed
  out[#out + 1] = size
end
if total > 0 then
  redis.call('INCRBY', KEYS[1], total)
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return out
"""


_FEED_SCRIPTS: weakref.WeakKeyDictionary[aioredis.Redis, AsyncScript] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class SendFeed:
    """What one flush of send results tells Redis about one blast."""

    requests: int
    ok: int
    failed: int


async def feed_send_results(
    settings: Settings, feeds: dict[int, SendFeed], *, client: aioredis.Redis
) -> dict[int, FailureWindow]:
    """Count requests for the live send rates and add results to each blast's failure-rate window: one script
    call for every blast of a flush of send results.

    Returns:
        The failure-rate window of each blast that got results.

    Raises:
        redis.exceptions.RedisError: Redis unreachable.
    """
    from shared.services.live import RATE_WINDOW_S

    if not feeds:
        return {}
    sec = int(time.time())
    keys = [settings.key("sent", sec), settings.key("sending_blasts")]
    args: list[int | str] = [RATE_WINDOW_S * 4, settings.BLAST_FAILURE_RATE_WINDOW]
    order = list(feeds)
    for blast_id in order:
        f = feeds[blast_id]
        keys += [settings.key("sent", blast_id, sec), window_key(settings, blast_id)]
        args += [blast_id, f.requests, f.ok, f.failed]
    script = _FEED_SCRIPTS.get(client)
    if script is None:
        script = _FEED_SCRIPTS[client] = client.register_script(_FEED)
    raw = await script(keys=keys, args=args)  # EVALSHA (loaded on first use)
    window, threshold = settings.BLAST_FAILURE_RATE_WINDOW, settings.BLAST_FAILURE_RATE_THRESHOLD
    return {
        blast_id: FailureWindow(int(raw[2 * i]), int(raw[2 * i + 1]), window, threshold)
        for i, blast_id in enumerate(order)
    }
