"""Provides build_provider (WHATSAPP_PROVIDER -> cloud or sandbox) and the daemon's credential check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import SecretStr

from shared.errors import ConfigError
from shared.fake_graph import WebhookSink
from shared.whatsapp.base import WhatsAppProvider
from shared.whatsapp.cloud import DEFAULT_POOL_SIZE, CloudClient
from shared.whatsapp.sandbox import SANDBOX_APP_SECRET, SANDBOX_TOKEN, SandboxProvider

if TYPE_CHECKING:
    from shared.config import Settings

CHOOSE_SANDBOX = (
    "to try blast without a Meta account, set WHATSAPP_PROVIDER=sandbox "
    "(simulated: nothing is sent to WhatsApp)"
)


def require_cloud_credentials(settings: Settings) -> None:
    """Refuse to run as `cloud` without a token and a phone number id (the daemon calls this at start).

    Args:
        settings: the deployment.

    Raises:
        ConfigError: naming the missing variables and how to choose the sandbox instead.
    """
    if settings.WHATSAPP_PROVIDER != "cloud":
        return
    missing = [
        name
        for name, value in (
            ("WHATSAPP_ACCESS_TOKEN", settings.WHATSAPP_ACCESS_TOKEN),
            ("WHATSAPP_PHONE_NUMBER_ID", settings.WHATSAPP_PHONE_NUMBER_ID),
        )
        if value is None or (isinstance(value, str) and not value.strip())
    ]
    if missing:
        names = " and ".join(missing)
        raise ConfigError(
            f"WHATSAPP_PROVIDER is cloud but {names} {'is' if len(missing) == 1 else 'are'} not set: "
            f"set {'it' if len(missing) == 1 else 'them'} (e.g. in /etc/blast/secrets.env); "
            f"or, {CHOOSE_SANDBOX}"
        )


def webhook_app_secret(settings: Settings) -> str | None:
    """The key webhooks are signed with: WHATSAPP_APP_SECRET, or the sandbox's fixed one when simulating."""
    if settings.WHATSAPP_APP_SECRET is not None:
        return settings.WHATSAPP_APP_SECRET.get_secret_value()
    return SANDBOX_APP_SECRET if settings.is_sandbox else None


def build_provider(
    settings: Settings,
    *,
    session: aiohttp.ClientSession | None = None,
    webhook_url: str | None = None,
    webhook_sink: WebhookSink | None = None,
    **sandbox_options: Any,
) -> WhatsAppProvider:
    """The provider WHATSAPP_PROVIDER names (not started: call `await provider.start()`).

    Args:
        settings: the deployment.
        session: a process-wide aiohttp session to share (the provider opens its own otherwise).
        webhook_url: sandbox only: where its status webhooks are POSTed (the daemon's /webhook).
        webhook_sink: sandbox only: `async def sink(raw_body, signature_header)` receiving them in-process.
        **sandbox_options: sandbox only: SandboxProvider arguments (latency_ms, failure_rate, …).

    Returns:
        A CloudClient or a SandboxProvider.

    Raises:
        ConfigError: `cloud` without a token or phone number id.
    """
    if settings.WHATSAPP_PROVIDER == "sandbox":
        return SandboxProvider.from_settings(
            settings, webhook_url=webhook_url, sink=webhook_sink, session=session, **sandbox_options
        )
    require_cloud_credentials(settings)
    return CloudClient.from_settings(settings, session=session)


def build_sender_client(
    settings: Settings,
    base: WhatsAppProvider,
    *,
    phone_number_id: str,
    waba_id: str,
    token: SecretStr | None,
    session: aiohttp.ClientSession | None = None,
) -> CloudClient:
    """A client sending from another number than the base provider's (not started: `await client.start()`).

    In the sandbox it talks to the sandbox's fake Graph API (which simulates the number); otherwise to Meta
    with the number's own token.

    Raises:
        ConfigError: `cloud` and the number's token setting is empty.
    """
    if isinstance(base, SandboxProvider):
        api_url, name = base.fake.url, "sandbox"
        token = SecretStr(SANDBOX_TOKEN)
        # the in-process fake simulates every number the operator adds (same WABA, Meta's default level)
        if phone_number_id != base.fake.config.phone_number_id:
            base.fake.config.extra_numbers.setdefault(phone_number_id, "STANDARD")
    else:
        if token is None:
            raise ConfigError(f"sender {phone_number_id} has no token: set its token setting and reload")
        api_url, name = settings.WHATSAPP_API_URL, "cloud"
    return CloudClient(
        api_url=api_url,
        access_token=token,
        phone_number_id=phone_number_id,
        business_account_id=waba_id or None,
        timeout_s=settings.WHATSAPP_TIMEOUT_S,
        use_marketing_endpoint=settings.WHATSAPP_USE_MARKETING_ENDPOINT,
        pool_size=max(DEFAULT_POOL_SIZE, settings.BLAST_MAX_IN_FLIGHT),
        session=session,
        name=name,
        send_client=settings.BLAST_SEND_CLIENT,
    )
