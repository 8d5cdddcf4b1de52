"""Provides the failure-rate window of each blast: its last BLAST_FAILURE_RATE_WINDOW results in Redis, so
that a blast whose share of failures passes BLAST_FAILURE_RATE_THRESHOLD pauses itself.

Both the sender (send results) and the webhook receiver (failed status webhooks) feed it with `note_results`;
the caller that gets `tripped` pauses the blast with `pause_reason(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.config import Settings
from shared.notify import redis_client

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
