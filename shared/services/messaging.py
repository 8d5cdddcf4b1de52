"""Provides the console's one direct send (a test message to one number) and the estimates of the create form:
how long a blast takes at the rate limit, and whether it would exceed the number's messaging limit tier.

The console never sends blasts; the test send is the single exception the operator asks for by name.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from tortoise.functions import Count

from shared.config import Settings
from shared.errors import ConfigError, ProviderError, ValidationFailed
from shared.models import Recipient
from shared.parsing.phones import mask_phone
from shared.parsing.template_params import build_send_components, param_keys
from shared.services.blasts import _approved_template, current_actor
from shared.services.recipients import normalize_query_phone
from shared.services.transitions import audit, utcnow
from shared.whatsapp.base import SendAccepted, WhatsAppProvider

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
    tmpl = await _approved_template(template, language)
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


async def estimate(
    settings: Settings, recipients: int, *, messaging_limit: int | None = None
) -> SendEstimate:
    """How long `recipients` messages take at BLAST_RATE_LIMIT, and whether they fit the messaging limit tier
    (Meta's, when given, else BLAST_MESSAGING_LIMIT) together with the numbers messaged in the last 24 h.
    """
    limit = messaging_limit or settings.BLAST_MESSAGING_LIMIT
    since = utcnow() - timedelta(hours=24)
    used = 0
    warning = None
    if limit is not None:
        # One aggregate over the last day's sends (the form asks once per file, not per refresh).
        row = await (
            Recipient.filter(sent_at__gte=since)
            .annotate(n=Count("phone", distinct=True))
            .first()
            .values_list("n", flat=True)
        )
        used = int(cast(int, row or 0))
        if used + recipients > limit:
            warning = (
                f"{recipients:,} recipients + {used:,} numbers messaged in the last 24 h exceed the "
                f"messaging limit of {limit:,} unique users per 24 h: Meta will refuse the excess; "
                "split the blast or send later"
            )
    return SendEstimate(
        recipients=recipients,
        duration_s=recipients / settings.BLAST_RATE_LIMIT,
        rate_limit=settings.BLAST_RATE_LIMIT,
        messaging_limit=limit,
        used_24h=used,
        warning=warning,
    )
