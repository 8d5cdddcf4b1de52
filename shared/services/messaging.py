"""Provides the console's one direct send (a test message to one number) and the estimates of the create form:
how long a blast takes at the rate limit, and whether it would exceed the number's messaging limit tier.

The console never sends blasts; the test send is the single exception the operator asks for by name.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from tortoise.functions import Count

from shared.actors import current_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import ConfigError, ProviderError, ValidationFailed
from shared.models import Recipient
from shared.parsing.phones import mask_phone
from shared.parsing.template_params import build_send_components, param_keys
from shared.services.blasts import approved_template
from shared.services.recipients import normalize_query_phone
from shared.services.transitions import audit
from shared.text import plural
from shared.whatsapp.base import PhoneNumberInfo, SendAccepted, WhatsAppProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TestSendResult:
    to: str
    wamid: str
    provider: str
    is_sandbox: bool


@contextlib.asynccontextmanager
async def provider_session(settings: Settings) -> AsyncIterator[WhatsAppProvider]:
    """A started provider for one operation, closed afterwards.

    Raises:
        ConfigError: the cloud provider lacks its credentials (the message names the variable).
    """
    from shared.whatsapp import build_provider  # deferred: only actions that talk to Meta pay for it

    provider = build_provider(settings)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def parse_params(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parameters as typed: NAME=VALUE pairs, or bare values taken as positions 1, 2, …"""
    out: dict[str, str] = {}
    position = 1
    for item in values:
        if "=" in item:
            key, value = item.split("=", 1)
            out[key.strip().lower()] = value
        else:
            out[str(position)] = item
            position += 1
    return out


async def test_send(
    settings: Settings,
    template: str,
    language: str,
    to: str,
    params: Mapping[str, str],
    *,
    actor: str | None = None,
) -> TestSendResult:
    """Send one APPROVED template to one number through the configured provider (audited).

    Raises:
        ValidationFailed: unknown or unapproved template, bad number, missing parameters.
        ConfigError: the cloud provider lacks its credentials.
        ProviderError: Meta refused the message (one line with the code and its meaning).
    """
    tmpl = await approved_template(template, language)
    phone = normalize_query_phone(to, settings)
    keys = param_keys(tmpl.components or [], tmpl.parameter_format)
    missing = [k for k in keys.all_keys if k not in params]
    if missing:
        raise ValidationFailed(
            f"template {tmpl.name} ({tmpl.language}) needs parameters {', '.join(missing)}"
        )
    components = build_send_components(keys, tmpl.parameter_format, dict(params))
    if settings.WHATSAPP_PROVIDER == "cloud" and (
        settings.WHATSAPP_ACCESS_TOKEN is None or not settings.WHATSAPP_PHONE_NUMBER_ID
    ):
        raise ConfigError(
            "a test send needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID (cloud provider)"
        )
    async with provider_session(settings) as provider:
        result = await provider.send_template(
            to=phone,
            template=tmpl.name,
            language=tmpl.language,
            components=components,
            category=tmpl.category,
        )
    who = actor or current_actor()
    if not isinstance(result, SendAccepted):
        log.info("test send of %s to %s failed: %s", tmpl.name, mask_phone(phone), result.error.meaning)
        raise ProviderError(f"test send to {phone} failed: {result.error.meaning}")
    await audit(
        actor=who,
        action="test-send",
        entity="template",
        entity_id=f"{tmpl.name}/{tmpl.language}",
        detail={"to": mask_phone(phone), "wamid": result.wamid, "provider": provider.name},
    )
    log.info("test send of %s to %s accepted (%s)", tmpl.name, mask_phone(phone), result.wamid)
    return TestSendResult(
        to=phone, wamid=result.wamid, provider=provider.name, is_sandbox=provider.is_sandbox
    )


#: How long Meta's messaging-limit tier is trusted once read (it changes at most a few times a day).
LIMIT_CACHE_S = 3600


@dataclass(frozen=True, slots=True)
class MessagingLimit:
    #: Unique users per moving 24 h (None: unlimited, or not known).
    limit: int | None
    #: Where it comes from: "Meta tier TIER_2K", "BLAST_MESSAGING_LIMIT", or "unknown".
    source: str


def _limit_key(settings: Settings) -> str:
    return settings.key("messaging_limit")


async def store_messaging_limit(settings: Settings, info: PhoneNumberInfo) -> MessagingLimit:
    """Cache the number's tier in Redis for LIMIT_CACHE_S (whoever asked Meta: the daemon or the console).

    Raises:
        redis.exceptions.RedisError: Redis is unreachable.
    """
    from shared.events import redis_client  # deferred: estimates without a limit never need Redis

    value = {"tier": info.messaging_limit_tier, "limit": info.daily_unique_limit}
    await redis_client(settings).set(_limit_key(settings), json.dumps(value), ex=LIMIT_CACHE_S)
    log.info("messaging limit tier %s cached for %d s", info.messaging_limit_tier, LIMIT_CACHE_S)
    return _from_tier(value["tier"], info.daily_unique_limit, settings)


def _from_tier(tier: object, limit: object, settings: Settings) -> MessagingLimit:
    if isinstance(tier, str) and tier:
        return MessagingLimit(int(limit) if isinstance(limit, int) else None, f"Meta tier {tier}")
    return _configured(settings)


def _configured(settings: Settings) -> MessagingLimit:
    if settings.BLAST_MESSAGING_LIMIT is not None:
        return MessagingLimit(settings.BLAST_MESSAGING_LIMIT, "BLAST_MESSAGING_LIMIT")
    return MessagingLimit(None, "unknown")


def can_ask_meta(settings: Settings) -> bool:
    """True when the configured provider can report the number's tier (sandbox, or cloud with credentials)."""
    if settings.is_sandbox:
        return True
    return settings.WHATSAPP_ACCESS_TOKEN is not None and bool(settings.WHATSAPP_PHONE_NUMBER_ID)


async def messaging_limit(settings: Settings, *, ask_meta: bool = True) -> MessagingLimit:
    """The number's messaging limit: Meta's tier as cached in Redis (asked for on demand when missing and the
    provider can tell), else BLAST_MESSAGING_LIMIT. Never raises: an unreachable Redis or Meta falls back.
    """
    from redis.exceptions import RedisError

    from shared.events import redis_client

    try:
        cached = await redis_client(settings).get(_limit_key(settings))
    except (RedisError, OSError) as exc:
        log.warning("messaging limit: Redis unreachable (%s); using BLAST_MESSAGING_LIMIT", exc)
        return _configured(settings)
    if cached is not None:
        value = json.loads(cached)
        return _from_tier(value.get("tier"), value.get("limit"), settings)
    if not ask_meta or not can_ask_meta(settings):
        return _configured(settings)
    try:
        async with provider_session(settings) as provider:
            info = await provider.phone_number_info()
        return await store_messaging_limit(settings, info)
    except Exception as exc:  # Meta, the network or Redis: the estimate must still work
        log.warning("messaging limit: cannot read the tier (%s); using BLAST_MESSAGING_LIMIT", exc)
        return _configured(settings)


@dataclass(frozen=True, slots=True)
class SendEstimate:
    recipients: int
    duration_s: float
    rate_limit: float
    #: Unique users per 24 h allowed by the tier (None: unlimited or not known).
    messaging_limit: int | None
    #: Unique numbers already messaged in the last 24 h (by any blast).
    used_24h: int
    #: The warning to show, or None.
    warning: str | None
    #: Where the limit comes from (see MessagingLimit.source).
    limit_source: str = "unknown"


async def unique_recipients_since(since: datetime) -> int:
    """Distinct numbers with a send at or after `since` (a range scan of the (sent_at, phone) index)."""
    row = await (
        Recipient.filter(sent_at__gte=since)
        .annotate(n=Count("phone", distinct=True))
        .first()
        .values_list("n", flat=True)
    )
    return int(cast(int, row or 0))


async def estimate(
    settings: Settings, recipients: int, *, limit: MessagingLimit | None = None
) -> SendEstimate:
    """How long `recipients` messages take at BLAST_RATE_LIMIT, and whether they fit the messaging limit tier
    (Meta's when known, else BLAST_MESSAGING_LIMIT) together with the numbers messaged in the last 24 h.
    """
    tier = limit or await messaging_limit(settings)
    used = 0
    warning = None
    if tier.limit is not None:
        used = await unique_recipients_since(utcnow() - timedelta(hours=24))
        if used + recipients > tier.limit:
            warning = (
                f"{plural(recipients, 'recipient')} + {plural(used, 'number')} messaged in the last 24 h exceed the "
                f"messaging limit of {tier.limit:,} unique users per 24 h ({tier.source}): Meta will refuse "
                "the excess; split the blast or send later"
            )
    return SendEstimate(
        recipients=recipients,
        duration_s=recipients / settings.BLAST_RATE_LIMIT,
        rate_limit=settings.BLAST_RATE_LIMIT,
        messaging_limit=tier.limit,
        used_24h=used,
        warning=warning,
        limit_source=tier.source,
    )
