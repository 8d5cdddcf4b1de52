"""Provides the WhatsApp provider interface and the typed results every provider returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from shared.errors import ProviderError

#: What `send_template` may be told about a template's category; only MARKETING changes the route.
TemplateCategory = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]


class ErrorClass(StrEnum):
    """What the sender should do about a failed request (see shared/whatsapp/errors.py for the table)."""

    RETRY_LATER = "retry_later"
    """Nothing was sent; try the same recipient again later (throttling, transient errors, no connection)."""
    RECIPIENT_PERMANENT = "recipient_permanent"
    """This recipient cannot get this message; fail it and go on with the others."""
    BLAST_FATAL = "blast_fatal"
    """Every other recipient would fail the same way (token, account, billing, template): pause the blast."""
    UNKNOWN_OUTCOME = "unknown_outcome"
    """The request may have reached Meta (timeout, connection lost after sending): never re-send silently."""


@dataclass(frozen=True, slots=True)
class GraphError:
    """One classified error: from a Graph API response, a status webhook, or the network.

    Attributes:
        error_class: what to do about it.
        code: Meta's `error.code` (None for network errors and bodies that are not Graph errors).
        http_status: the HTTP status of the response (None for network errors and webhook errors).
        meaning: one operator-facing line with the code and the fix, e.g.
            "access token rejected by Meta (code 190): renew WHATSAPP_ACCESS_TOKEN, then resume".
        title: Meta's `message` (or webhook `title`), for logs; never branch on it.
        details: Meta's `error_data.details`, the longer human-readable cause.
        subcode: the deprecated `error_subcode`, when Meta still sends it.
        fbtrace_id: Meta's trace id, for support requests.
        throttled: the sender's throughput is too high: slow the shared limiter down.
        pair_rate: only this recipient must wait (131056): back off 1, 4, 16, 64 s.
        opted_out: the recipient stopped marketing messages (131050): add it to the suppression list.
        may_be_systemic: marked recipient-permanent, but N in a row mean the shared payload is wrong: pause.
        retry_after_s: how long to wait before retrying, when known.
        raw: the response body (truncated) for codes the table does not know.
    """

    error_class: ErrorClass
    code: int | None
    http_status: int | None
    meaning: str
    title: str = ""
    details: str | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None
    throttled: bool = False
    pair_rate: bool = False
    opted_out: bool = False
    may_be_systemic: bool = False
    retry_after_s: float | None = None
    raw: str | None = None

    @property
    def is_retryable(self) -> bool:
        """True when nothing was sent and the same recipient may be tried again later."""
        return self.error_class is ErrorClass.RETRY_LATER

    def __str__(self) -> str:
        return self.meaning


@dataclass(frozen=True, slots=True)
class SendAccepted:
    """Meta accepted the message (HTTP 200 with a wamid); delivery is reported later by status webhooks.

    Attributes:
        wamid: the message id every status webhook for this message carries.
        wa_id: the WhatsApp id Meta resolved the number to (may differ from what was sent).
        message_status: `accepted`, `held_for_quality_assessment` or `paused`.
    """

    wamid: str
    wa_id: str | None
    message_status: str = "accepted"
    ok: Literal[True] = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The send did not (or may not have) go through; `error.error_class` says what to do."""

    error: GraphError
    ok: Literal[False] = field(default=False, init=False)

    @property
    def error_class(self) -> ErrorClass:
        return self.error.error_class


SendResult = SendAccepted | SendFailed


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """One message template as Meta lists it (one name + language pair).

    Attributes:
        id: Meta's template id (always a string).
        name: the template name.
        language: the language code, e.g. en_US.
        status: APPROVED, PENDING, REJECTED, PAUSED, DISABLED, …
        category: MARKETING, UTILITY or AUTHENTICATION.
        parameter_format: POSITIONAL or NAMED.
        components: the template definition (HEADER/BODY/FOOTER/BUTTONS), as Meta returns it.
        quality_score: GREEN, YELLOW, RED or UNKNOWN, when listed.
        rejected_reason: Meta's rejection reason (NONE when not rejected), when listed.
        raw: every field Meta returned.
    """

    id: str
    name: str
    language: str
    status: str
    category: str
    parameter_format: str
    components: Sequence[Mapping[str, Any]]
    quality_score: str | None
    rejected_reason: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TemplateSubmitted:
    """Meta's answer to a template creation: its id, status (usually PENDING) and category."""

    id: str
    status: str
    category: str


@dataclass(frozen=True, slots=True)
class PhoneNumberInfo:
    """The sender number's standing at Meta.

    Attributes:
        id: the phone number id.
        display_phone_number: the number as shown to users.
        verified_name: the business display name.
        quality_rating: GREEN, YELLOW, RED or UNKNOWN.
        messaging_limit_tier: `whatsapp_business_manager_messaging_limit` (e.g. TIER_2K, TIER_UNLIMITED),
            falling back to the deprecated `messaging_limit_tier`.
        daily_unique_limit: unique users per moving 24 h that tier allows (None: unlimited or unknown).
        throughput_level: `throughput.level` (STANDARD = 80 mps, HIGH = 1,000 mps).
        raw: every field Meta returned.
    """

    id: str
    display_phone_number: str | None
    verified_name: str | None
    quality_rating: str | None
    messaging_limit_tier: str | None
    daily_unique_limit: int | None
    throughput_level: str | None
    raw: Mapping[str, Any]


class GraphApiError(ProviderError):
    """A template or account request to the Graph API failed; `error` holds the classification.

    Args:
        error: the classified error.
        context: what was being done, e.g. "submitting template promo (en)".
    """

    def __init__(self, error: GraphError, context: str | None = None) -> None:
        text = error.meaning
        if error.details and error.details not in text:
            text += f" (Meta says: {error.details})"
        super().__init__(f"{context} failed: {text}" if context else text)
        self.error = error
        self.context = context


@runtime_checkable
class WhatsAppProvider(Protocol):
    """What the daemon, the template sync and the console call; `cloud` and `sandbox` implement it."""

    @property
    def name(self) -> str:
        """`cloud` or `sandbox`."""
        ...

    @property
    def is_sandbox(self) -> bool:
        """True when nothing reaches WhatsApp: everything said about this provider must say so."""
        ...

    def describe(self) -> str:
        """One line for logs and the console: which provider, which number, and whether it is simulated."""
        ...

    async def start(self) -> None:
        """Open the HTTP session (and, for the sandbox, start the simulated Graph API)."""
        ...

    async def close(self) -> None:
        """Release everything `start` opened; safe to call twice."""
        ...

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
        """Send one template message; never raises for Graph or network errors (they are in the result)."""
        ...

    async def list_templates(self, *, limit: int = 100) -> list[TemplateInfo]:
        """Every template of the business account, following the cursor pages to the end."""
        ...

    async def submit_template(
        self,
        *,
        name: str,
        language: str,
        category: str,
        components: Sequence[Mapping[str, Any]],
        parameter_format: str | None = None,
    ) -> TemplateSubmitted:
        """Create a template for review."""
        ...

    async def phone_number_info(self) -> PhoneNumberInfo:
        """The sender number's messaging limit tier, quality rating and throughput level."""
        ...
