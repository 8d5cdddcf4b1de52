"""The messaging-limit warning: Meta's tier (asked once, cached in Redis for an hour) before BLAST_MESSAGING_LIMIT,
and a 24 h unique-recipients count that is an index range scan, not a scan of every recipient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from tortoise import connections

from shared.clock import utcnow
from shared.config import Settings
from shared.models import Blast, Recipient, Template
from shared.services import messaging
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.conftest import USE_POSTGRES, free_port


async def test_meta_tier_is_asked_once_and_cached(
    db: Settings, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await messaging.messaging_limit(db)  # the sandbox's simulated Meta says TIER_2K
    assert first == messaging.MessagingLimit(2000, "Meta tier TIER_2K")
    key = db.key("messaging_limit")
    assert 0 < await redis_client.ttl(key) <= messaging.LIMIT_CACHE_S

    def no_meta(settings: Settings) -> object:
        raise AssertionError("Meta asked again although the tier is cached")

    monkeypatch.setattr(messaging, "provider_session", no_meta)
    assert await messaging.messaging_limit(db) == first


async def test_unlimited_tier_means_no_warning(db: Settings, redis_client: aioredis.Redis) -> None:
    await redis_client.set(db.key("messaging_limit"), '{"tier": "TIER_UNLIMITED", "limit": null}')
    tier = await messaging.messaging_limit(db)
    assert tier == messaging.MessagingLimit(None, "Meta tier TIER_UNLIMITED")
    assert (await messaging.estimate(db, 10**7)).warning is None


async def test_falls_back_to_the_configured_limit(
    make_settings: Callable[..., Settings], db: Settings
) -> None:
    cloud = make_settings(WHATSAPP_PROVIDER="cloud", BLAST_MESSAGING_LIMIT=500)
    assert not messaging.can_ask_meta(cloud)  # no credentials: Meta is not asked
    assert await messaging.messaging_limit(cloud) == messaging.MessagingLimit(500, "BLAST_MESSAGING_LIMIT")
    no_redis = make_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", BLAST_MESSAGING_LIMIT=700)
    assert await messaging.messaging_limit(no_redis) == messaging.MessagingLimit(700, "BLAST_MESSAGING_LIMIT")
    nothing = make_settings(WHATSAPP_PROVIDER="cloud")
    assert await messaging.messaging_limit(nothing) == messaging.MessagingLimit(None, "unknown")


async def _sent(n: int, *, hours_ago: float) -> None:
    t = await Template.get_or_none(name="t") or await Template.create(
        name="t", language="en", status=TemplateStatus.APPROVED
    )
    blast = await Blast.create(name=f"sent {hours_ago}", template=t, status=BlastStatus.COMPLETED)
    at = utcnow() - timedelta(hours=hours_ago)
    await Recipient.bulk_create(
        [
            Recipient(blast_id=blast.id, phone=f"+6281200000{i:03d}", status=RecipientStatus.SENT, sent_at=at)
            for i in range(n)
        ]
    )


async def test_estimate_counts_unique_numbers_of_the_last_day(db: Settings) -> None:
    await _sent(3, hours_ago=1)
    await _sent(2, hours_ago=2)  # the same numbers again: counted once
    await _sent(5, hours_ago=30)  # too old
    assert await messaging.unique_recipients_since(utcnow() - timedelta(hours=24)) == 3
    limit = messaging.MessagingLimit(10, "Meta tier TIER_250")
    fits = await messaging.estimate(db, 7, limit=limit)
    assert fits.used_24h == 3 and fits.warning is None
    over = await messaging.estimate(db, 8, limit=limit)
    assert over.warning is not None and "Meta tier TIER_250" in over.warning and "3 numbers" in over.warning


async def test_last_day_count_uses_the_sent_at_index(db: Settings) -> None:
    conn = connections.get("default")
    since = utcnow() - timedelta(hours=24)
    if USE_POSTGRES:
        # Tiny tables are cheaper to scan; forbid that to see whether the index can serve the query at all.
        async with conn._in_transaction() as tx:
            await tx.execute_script("SET LOCAL enable_seqscan = off")
            _, rows = await tx.execute_query(
                "EXPLAIN SELECT COUNT(DISTINCT phone) FROM recipient WHERE sent_at >= $1", [since]
            )
        plan = " ".join(str(next(iter(dict(r).values()))) for r in rows)
        assert "recipient_sent_at" in plan and "Seq Scan" not in plan
    else:
        _, rows = await conn.execute_query(
            "EXPLAIN QUERY PLAN SELECT COUNT(DISTINCT phone) FROM recipient WHERE sent_at >= ?",
            [since.isoformat()],
        )
        plan = " ".join(str(dict(r)["detail"]) for r in rows)
        assert "COVERING INDEX recipient_sent_at" in plan and "SCAN recipient" not in plan
