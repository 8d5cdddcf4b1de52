"""Provides the `sandbox` provider: the fake Graph API in-process, so blasts run end to end without Meta."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from shared.fake_graph import FakeConfig, FakeGraph, FakeTemplate, WebhookSink
from shared.whatsapp.base import PhoneNumberInfo, SendResult, TemplateInfo, TemplateSubmitted
from shared.whatsapp.cloud import CloudClient

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

#: Said wherever the sandbox runs, so nobody mistakes a simulated blast for a real one.
SANDBOX_BANNER = "SANDBOX: nothing is sent to WhatsApp; Meta's Graph API is simulated in-process"
#: Token between the sandbox's client and its fake (not a secret: the fake only listens on loopback).
SANDBOX_TOKEN = "sandbox-access-token"  # noqa: S105 (a fixed token for the in-process fake)
#: Signs the sandbox's webhooks when WHATSAPP_APP_SECRET is not set.
SANDBOX_APP_SECRET = "sandbox-app-secret"  # noqa: S105 (fixed, for simulated webhooks only)
SANDBOX_PHONE_NUMBER_ID = "100000000000001"
SANDBOX_WABA_ID = "200000000000002"
TEMPLATES_FILE = "sandbox-templates.json"

#: Templates a new sandbox starts with: one positional, one named, one with a header and a URL button.
DEMO_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "hello_world",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {"type": "BODY", "text": "Welcome and congratulations!! This message is from the blast sandbox."},
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
    },
    {
        "name": "order_update",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} is on its way.",
                "example": {"body_text": [["Ada", "A-1001"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [{"type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}"}],
            },
        ],
    },
    {
        "name": "spring_sale",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Spring sale"},
            {
                "type": "BODY",
                "text": "Hi {{first_name}}, use code {{code}} for 20% off.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Ada"},
                        {"param_name": "code", "example": "SPRING20"},
                    ]
                },
            },
            {"type": "FOOTER", "text": "Tap Stop promotions to opt out"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop promotions"}]},
        ],
    },
    {
        "name": "promo_bahasa",
        "language": "id",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Halo {{1}}, diskon {{2}} untuk Anda minggu ini."}],
    },
)


def sandbox_dir(settings: Settings) -> Path:
    """Where the sandbox keeps its templates: WHATSAPP_SANDBOX_DIR, beside a SQLite file, or the temp dir."""
    if settings.WHATSAPP_SANDBOX_DIR:
        return Path(settings.WHATSAPP_SANDBOX_DIR)
    url = settings.DATABASE_URL
    if url.startswith("sqlite://") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite://")).parent
    return Path(tempfile.gettempdir()) / f"blast-sandbox-{settings.BLAST_REDIS_PREFIX}"


class SandboxProvider:
    """The `sandbox` provider: a fake Graph API on a free loopback port, driven by the real cloud client.

    Sends take realistic time (80 ± 40 ms by default), a small share fail later by status webhook
    (131026/131049), the per-number throughput limit answers 130429, submitted templates are approved after
    a delay, and sent/delivered/read/failed statuses come back as signed webhooks, through the same code
    path as Meta's: POSTed to `webhook_url`, or handed to `sink(raw_body, signature_header)` in-process.

    Args:
        webhook_url: where to POST status webhooks (the daemon's /webhook).
        sink: `async def sink(raw_body: bytes, signature_header: str) -> None`, used instead of the URL.
        app_secret: key of the webhook signatures (the daemon verifies with the same one).
        latency_ms: mean answer time of the fake.
        jitter_ms: the answer time varies by up to this much either way.
        failure_rate: share of accepted sends that later fail by webhook.
        failure_codes: the codes those failures carry.
        review_delay_s: seconds until a submitted template is approved (REJECTED if its name has "reject").
        mps: the simulated number's throughput limit (130429 above it).
        templates: templates to start with when the store is new (DEMO_TEMPLATES by default).
        templates_path: a JSON file shared by every sandbox of the deployment (console and daemon).
        phone_number_id: the simulated sender number's id.
        business_account_id: the simulated WABA id.
        timeout_s: the client's per-request timeout.
        use_marketing_endpoint: send MARKETING templates through /marketing_messages, as `cloud` would.
        seed: seed of the fake's random choices.
        session: a process-wide aiohttp session for the client.
    """

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        sink: WebhookSink | None = None,
        app_secret: str = SANDBOX_APP_SECRET,
        latency_ms: float = 80.0,
        jitter_ms: float = 40.0,
        failure_rate: float = 0.02,
        failure_codes: Sequence[int] = (131026, 131049),
        review_delay_s: float = 5.0,
        mps: float | None = 80.0,
        templates: Iterable[Mapping[str, Any]] | None = None,
        templates_path: str | Path | None = None,
        phone_number_id: str = SANDBOX_PHONE_NUMBER_ID,
        business_account_id: str = SANDBOX_WABA_ID,
        timeout_s: float = 15.0,
        use_marketing_endpoint: bool = False,
        seed: int | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = FakeConfig(
            access_token=SANDBOX_TOKEN,
            app_secret=app_secret,
            phone_number_id=phone_number_id,
            business_account_id=business_account_id,
            display_phone_number="15550000000",
            verified_name="SANDBOX (simulated)",
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            mps=mps,
            failure_rate=failure_rate,
            failure_codes=tuple(failure_codes),
            review_delay_s=review_delay_s,
            wamid_prefix="wamid.SANDBOX.",
            webhook_url=webhook_url,
            webhook_delay_ms=300.0,
            webhook_jitter_ms=200.0,
            webhook_read_rate=0.7,
            webhook_duplicate_rate=0.02,
            webhook_reorder_rate=0.05,
            record_limit=5_000,  # a long sandbox blast must not grow memory
        )
        is_new = templates_path is None or not Path(templates_path).exists()
        seed_templates = list(DEMO_TEMPLATES if templates is None else templates) if is_new else []
        self.fake = FakeGraph(
            self.config,
            templates=[FakeTemplate.from_json(t) for t in seed_templates],
            sink=sink,
            templates_path=templates_path,
            seed=seed,
        )
        self._timeout_s = timeout_s
        self._use_marketing_endpoint = use_marketing_endpoint
        self._session = session
        self._client: CloudClient | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        webhook_url: str | None = None,
        sink: WebhookSink | None = None,
        session: aiohttp.ClientSession | None = None,
        **options: Any,
    ) -> SandboxProvider:
        """The sandbox for a deployment: its app secret, rate, failure rate and shared template file."""
        secret = settings.WHATSAPP_APP_SECRET
        defaults: dict[str, Any] = {
            "app_secret": secret.get_secret_value() if secret is not None else SANDBOX_APP_SECRET,
            "failure_rate": settings.WHATSAPP_SANDBOX_FAILURE_RATE,
            "mps": max(80.0, settings.BLAST_RATE_LIMIT),
            "templates_path": sandbox_dir(settings) / TEMPLATES_FILE,
            "phone_number_id": settings.WHATSAPP_PHONE_NUMBER_ID or SANDBOX_PHONE_NUMBER_ID,
            "business_account_id": settings.WHATSAPP_BUSINESS_ACCOUNT_ID or SANDBOX_WABA_ID,
            "timeout_s": settings.WHATSAPP_TIMEOUT_S,
            "use_marketing_endpoint": settings.WHATSAPP_USE_MARKETING_ENDPOINT,
        }
        defaults.update(options)
        return cls(webhook_url=webhook_url, sink=sink, session=session, **defaults)

    # --- identity ------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return "sandbox"

    @property
    def is_sandbox(self) -> bool:
        return True

    @property
    def webhook_app_secret(self) -> str:
        """The key the sandbox signs webhooks with; the webhook receiver verifies with the same."""
        return self.config.app_secret

    def describe(self) -> str:
        where = self.fake.url if self._client is not None else "not started"
        return f"sandbox ({SANDBOX_BANNER}; fake Graph API at {where})"

    def __repr__(self) -> str:
        return f"SandboxProvider(url={self.fake.url!r}, phone_number_id={self.config.phone_number_id!r})"

    def set_webhook_target(self, *, url: str | None = None, sink: WebhookSink | None = None) -> None:
        """Point the status webhooks somewhere else (e.g. once the daemon's HTTP server knows its port)."""
        self.config.webhook_url = url
        self.fake.emitter.sink = sink

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the fake on a free loopback port and the client towards it."""
        if self._client is not None:
            return
        await self.fake.start()
        self._client = CloudClient(
            api_url=self.fake.url,
            access_token=SANDBOX_TOKEN,
            phone_number_id=self.config.phone_number_id,
            business_account_id=self.config.business_account_id,
            timeout_s=self._timeout_s,
            use_marketing_endpoint=self._use_marketing_endpoint,
            session=self._session,
            name="sandbox",
        )
        await self._client.start()
        log.warning("%s (fake Graph API at %s)", SANDBOX_BANNER, self.fake.url)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        await self.fake.stop()

    def _started(self) -> CloudClient:
        if self._client is None:
            raise RuntimeError("the sandbox provider is not started (call start() first)")
        return self._client

    # --- provider calls ------------------------------------------------------------------------------------
    async def send_template(
        self,
        *,
        to: str,
        template: str,
        language: str,
        components: Sequence[Mapping[str, Any]] = (),
        callback_data: str | None = None,
        category: str | None = None,
    ) -> SendResult:
        """Send to the simulated Graph API (see CloudClient.send_template)."""
        return await self._started().send_template(
            to=to,
            template=template,
            language=language,
            components=components,
            callback_data=callback_data,
            category=category,
        )

    async def list_templates(self, *, limit: int = 100) -> list[TemplateInfo]:
        return await self._started().list_templates(limit=limit)

    async def submit_template(
        self,
        *,
        name: str,
        language: str,
        category: str,
        components: Sequence[Mapping[str, Any]],
        parameter_format: str | None = None,
    ) -> TemplateSubmitted:
        return await self._started().submit_template(
            name=name,
            language=language,
            category=category,
            components=components,
            parameter_format=parameter_format,
        )

    async def phone_number_info(self) -> PhoneNumberInfo:
        return await self._started().phone_number_info()
