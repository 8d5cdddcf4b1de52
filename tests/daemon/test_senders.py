"""A blast sent from a pool of sender numbers: spread over the numbers, each paced by its own limiter, a recipient
kept on its number when retried, 131057 (number being upgraded) holding that number without failing anyone, and
a number's token rotated in the secrets file used from its lane's next load."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.rate_limit import RateLimiter
from shared.config import Settings
from shared.fake_graph.server import FakeGraph
from shared.models import Recipient, Sender
from shared.status import BlastStatus, RecipientStatus
from shared.whatsapp.base import GraphApiError
from tests.daemon.conftest import (
    RunningDaemon,
    SettingsFactory,
    assert_counters_exact,
    blast_of,
    make_blast,
    phone,
    status_is,
    wait_for,
)
from tests.daemon.test_sending import max_in_window

N1, N2 = "200000000000001", "200000000000002"


@dataclass(frozen=True)
class TwoNumbers:
    """Two more numbers of the fake's WABA (N1, N2), whose tokens live in settings named by the sender rows."""

    fake: FakeGraph
    cloud_settings: SettingsFactory
    start_daemon: Callable[[Settings], Awaitable[RunningDaemon]]

    async def start(self, *, rate_cap: float, **overrides: Any) -> tuple[Settings, RunningDaemon]:
        """Add both numbers (capped at `rate_cap` msg/s) and start a cloud daemon with these settings."""
        settings = self.cloud_settings(**overrides)
        waba = self.fake.config.business_account_id
        await Sender.create(
            phone_number_id=N1, waba_id=waba, token_env="BLAST_TEST_TOKEN_A", rate_cap=rate_cap
        )
        await Sender.create(
            phone_number_id=N2, waba_id=waba, token_env="BLAST_TEST_TOKEN_B", rate_cap=rate_cap
        )
        return settings, await self.start_daemon(settings)


@pytest.fixture
def two_numbers(
    db: Any,
    fake: FakeGraph,
    cloud_settings: SettingsFactory,
    start_daemon: Callable[[Settings], Awaitable[RunningDaemon]],
    monkeypatch: pytest.MonkeyPatch,
) -> TwoNumbers:
    fake.config.extra_numbers.update({N1: "STANDARD", N2: "STANDARD"})
    monkeypatch.setenv("BLAST_TEST_TOKEN_A", fake.config.access_token)
    monkeypatch.setenv("BLAST_TEST_TOKEN_B", fake.config.access_token)
    return TwoNumbers(fake, cloud_settings, start_daemon)


async def pool_blast(settings: Any, n: int, pool: list[str]) -> int:
    return await make_blast(settings, n, senders=pool)


async def test_a_pool_blast_is_spread_over_its_numbers_each_within_its_own_rate(
    two_numbers: TwoNumbers, fake: FakeGraph, redis_client: Any
) -> None:
    settings, _ = await two_numbers.start(rate_cap=60.0, BLAST_RATE_LIMIT=1000.0, BLAST_RATE_AUDIT=True)
    blast_id = await pool_blast(settings, 240, [N1, N2])
    await wait_for(
        lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=40, what="pool blast COMPLETED"
    )
    received = fake.received
    assert Counter(m.to for m in received) == Counter({phone(i)[1:]: 1 for i in range(240)})
    by_number = Counter(m.phone_number_id for m in received)
    assert set(by_number) == {N1, N2}, "both numbers send; the default number sends nothing"
    assert min(by_number.values()) >= 60
    # Each recipient carries the number it was sent from.
    rows = await Recipient.filter(blast_id=blast_id).values_list("phone", "sender_id")
    sent_from = {m.to: m.phone_number_id for m in received}
    assert all(sent_from[p[1:]] == s for p, s in rows)
    for number in (N1, N2):
        limiter = RateLimiter(
            redis_client, settings.key("rate", number), 60.0, audit_key=settings.key("rate-audit", number)
        )
        grants = await limiter.audited_grants()
        assert len(grants) >= by_number[number] and max_in_window(grants) <= 60
    await assert_counters_exact(blast_id)


async def test_a_retried_recipient_keeps_the_number_it_was_first_sent_from(
    two_numbers: TwoNumbers, fake: FakeGraph
) -> None:
    for i in (3, 7, 11):
        fake.add_fault(mode="error", code=131000, to=phone(i), times=1)
    settings, _ = await two_numbers.start(rate_cap=200.0)
    blast_id = await pool_blast(settings, 30, [N1, N2])
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=40, what="blast COMPLETED")
    for i in (3, 7, 11):
        tries = [m for m in fake.received if m.to == phone(i)[1:]]
        assert [m.outcome for m in tries] == ["error", "accepted"]
        assert tries[0].phone_number_id == tries[1].phone_number_id
    assert (await blast_of(blast_id)).n_sent == 30


async def test_131057_holds_that_number_and_fails_nobody(
    two_numbers: TwoNumbers, fake: FakeGraph, redis_client: Any
) -> None:
    fake.add_fault(mode="error", code=131057, to=phone(0), times=1)
    settings, _ = await two_numbers.start(rate_cap=200.0)
    blast_id = await pool_blast(settings, 1, [N1])
    await wait_for(
        lambda: _has_error(blast_id, 131057), timeout_s=20, what="the 131057 answer written back as PENDING"
    )
    row = await Recipient.get(blast_id=blast_id)
    assert row.status == RecipientStatus.PENDING and row.sender_id == N1
    assert row.next_attempt_at is not None and row.next_attempt_at.timestamp() - time.time() > 50
    # The number's limiter grants nothing for about a minute, in every daemon.
    limiter = RateLimiter(redis_client, settings.key("rate", N1), 200.0)
    grant = await limiter.acquire(1)
    assert grant.count == 0 and grant.wait_s > 50
    blast = await blast_of(blast_id)
    assert blast.status == BlastStatus.PROCESSING and blast.n_failed == 0


async def _has_error(blast_id: int, code: int) -> bool:
    return await Recipient.filter(blast_id=blast_id, error_code=code, status=RecipientStatus.PENDING).exists()


async def test_the_daemon_reads_each_numbers_level_and_the_portfolio_limit_from_meta(
    two_numbers: TwoNumbers, fake: FakeGraph
) -> None:
    from daemon.lanes import refresh_standing
    from shared.services import senders

    fake.config.extra_numbers[N1] = "HIGH"
    fake.config.messaging_limit = "TIER_10K"
    settings, d = await two_numbers.start(rate_cap=5000.0)
    assert await refresh_standing(d.runtime) == 3  # the default number and the two others
    by_id = {s.phone_number_id: s for s in await senders.list_senders(settings)}
    assert by_id[N1].throughput_level == "HIGH" and by_id[N1].rate == 1000.0  # Meta's level caps the cap
    assert by_id[N2].throughput_level == "STANDARD" and by_id[N2].rate == 80.0
    assert {s.messaging_limit_tier for s in by_id.values()} == {"TIER_10K"}
    assert by_id[fake.config.phone_number_id].is_default
    assert (await d.runtime.lane(N1)).rate == 1000.0


async def test_a_rotated_token_in_the_secrets_file_is_used_from_the_next_lane_load(
    two_numbers: TwoNumbers,
    fake: FakeGraph,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """N1's token lives in the secrets file only: the lane reads it again at each load (never logging it)."""
    _, d = await two_numbers.start(rate_cap=200.0)
    secrets = tmp_path / "secrets.env"
    secrets.write_text("BLAST_TEST_TOKEN_A=an-expired-token\n")
    monkeypatch.delenv("BLAST_TEST_TOKEN_A")
    monkeypatch.setenv("BLAST_ENV_FILE", str(secrets))
    with pytest.raises(GraphApiError) as rejected:
        await (await d.runtime.lane(N1)).provider.phone_number_info()
    assert rejected.value.error.code == 190
    secrets.write_text(f"BLAST_TEST_TOKEN_A={fake.config.access_token}\n")
    caplog.set_level(logging.INFO, logger="daemon.lanes")
    d.runtime.expire_lanes()
    assert (await (await d.runtime.lane(N1)).provider.phone_number_info()).id == N1
    assert "sender 200000000000001: new token from BLAST_TEST_TOKEN_A in use" in caplog.text
    secrets.write_text("BLAST_TEST_TOKEN_A=\n")  # emptied by mistake: the lane keeps the token it has
    d.runtime.expire_lanes()
    assert (await (await d.runtime.lane(N1)).provider.phone_number_info()).id == N1
    assert "its token setting BLAST_TEST_TOKEN_A is empty now" in caplog.text
    assert fake.config.access_token not in caplog.text and "an-expired-token" not in caplog.text
