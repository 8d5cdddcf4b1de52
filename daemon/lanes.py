"""Provides the daemon's sender lanes: per sender number (other than the default one) its client, its limiter
(keyed by its phone number id, shared by all daemons) and its rate, made on first use and re-read from the
database every LANE_TTL_S so that a throughput upgrade or a new cap is followed without a restart; its token is
re-read then too (from the environment or the env files), so a rotated token in the secrets file is used from
the next lane load on.

The default sender (WHATSAPP_PHONE_NUMBER_ID) is not a lane: its blasts use the runtime's provider and
limiter, exactly as before senders existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr

from daemon.rate_limit import GRANT_HORIZON_S, RateLimiter
from shared.services import senders
from shared.whatsapp.cloud import CloudClient
from shared.whatsapp.factory import build_sender_client

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger(__name__)

#: A lane's rate and level are re-read from the database after this long.
LANE_TTL_S = 30.0


@dataclass(slots=True)
class Lane:
    """What a chunk needs to send from one number."""

    phone_number_id: str
    provider: CloudClient
    limiter: RateLimiter
    rate: float
    loaded_at: float
    #: the token last read from the number's setting (None: it was empty then)
    token: SecretStr | None


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class Lanes:
    """The lanes of one daemon, by phone number id."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lanes: dict[str, Lane] = {}
        self._lock = asyncio.Lock()

    async def get(self, phone_number_id: str) -> Lane:
        """The lane of a sender number (made, or re-read when older than LANE_TTL_S).

        Raises:
            NotFound: no such sender.
            ConfigError: the sender's token setting is empty (cloud).
        """
        lane = self._lanes.get(phone_number_id)
        if lane is not None and time.monotonic() - lane.loaded_at < LANE_TTL_S:
            return lane
        async with self._lock:
            lane = self._lanes.get(phone_number_id)
            if lane is not None and time.monotonic() - lane.loaded_at < LANE_TTL_S:
                return lane
            rt = self.rt
            info, token = await senders.sender_for_send(rt.settings, phone_number_id)
            if lane is not None:
                self._follow_token(lane, info.token_env, token)
            if lane is not None and lane.rate == info.rate:
                lane.loaded_at = time.monotonic()
                return lane
            if lane is None:
                provider = build_sender_client(
                    rt.settings,
                    rt.provider,
                    phone_number_id=phone_number_id,
                    waba_id=info.waba_id,
                    token=token,
                )
                await provider.start()
            else:
                provider = lane.provider
                log.info("sender %s: rate %s/s -> %s/s", phone_number_id, lane.rate, info.rate)
            limiter = RateLimiter(
                rt.redis,
                rt.settings.key("rate", phone_number_id),
                info.rate,
                horizon_s=GRANT_HORIZON_S,
                audit_key=rt.settings.key("rate-audit", phone_number_id)
                if rt.settings.BLAST_RATE_AUDIT
                else None,
            )
            lane = Lane(phone_number_id, provider, limiter, info.rate, time.monotonic(), token)
            self._lanes[phone_number_id] = lane
            return lane

    def _follow_token(self, lane: Lane, token_env: str, token: SecretStr | None) -> None:
        """Use the number's token as just read, when it changed (names in the log, never values)."""
        if self.rt.settings.is_sandbox or _secret(token) == _secret(lane.token):
            return
        lane.token = token
        if token is None:
            log.error(
                "sender %s: its token setting %s is empty now; the lane keeps the token it has",
                lane.phone_number_id,
                token_env,
            )
            return
        lane.provider.set_access_token(token)
        log.info("sender %s: new token from %s in use from the next request", lane.phone_number_id, token_env)

    def expire(self) -> None:
        """Re-read every lane's rate from the database at its next use (after Meta's standing was read)."""
        for lane in self._lanes.values():
            lane.loaded_at = float("-inf")

    async def aclose(self) -> None:
        for lane in self._lanes.values():
            with contextlib.suppress(Exception):
                await lane.provider.close()
        self._lanes.clear()


async def refresh_standing(rt: Runtime) -> int:
    """Read every sender number's throughput level, quality and the portfolio's messaging limit from Meta and
    store them (the limiters follow within LANE_TTL_S). Returns how many numbers were read; never raises.
    """
    read = 0
    try:
        await senders.ensure_default(rt.settings)
        numbers = await senders.list_senders(rt.settings)
    except Exception as exc:  # database outage: the next round reads them
        log.warning("sender standing not read (%s)", exc)
        return 0
    for number in numbers:
        try:
            if number.is_default:
                info = await rt.provider.phone_number_info()
            else:
                info = await (await rt.lane(number.phone_number_id)).provider.phone_number_info()
            await senders.record_standing(
                number.phone_number_id,
                throughput_level=info.throughput_level,
                quality_rating=info.quality_rating,
                messaging_limit_tier=info.messaging_limit_tier,
                display_phone=info.display_phone_number,
            )
            read += 1
        except Exception as exc:  # one number's failure must not stop the others
            log.warning(
                "sender %s: standing not read (%s: %s)", number.phone_number_id, type(exc).__name__, exc
            )
    rt.expire_lanes()
    return read


async def run_standing_loop(rt: Runtime, stop: asyncio.Event) -> None:
    """At startup and then with every template sync interval: `refresh_standing`."""
    while not stop.is_set():
        await refresh_standing(rt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rt.settings.TEMPLATE_SYNC_INTERVAL)
