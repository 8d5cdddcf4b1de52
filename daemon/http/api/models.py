"""Provides the API's request and response models: they validate requests, shape answers, and are the OpenAPI
document's schemas (one source for all three)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from shared.status import BlastStatus, RecipientStatus, TemplateStatus


def _iso(value: datetime) -> str:
    return value.isoformat()


#: A time in ISO 8601 with its offset (e.g. 2026-12-01T02:00:00+00:00), as the CLI's --json writes it.
Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

#: An idempotency key: the same key returns the first result instead of doing it twice.
Key = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
#: A time as the CLI takes it: ISO 8601 with an offset, naive (read in BLAST_TIMEZONE), "now", or +10m / +2h.
When = Annotated[str, Field(min_length=1, max_length=64, examples=["2026-12-01T09:00:00+07:00", "+2h"])]
SenderId = Annotated[str, Field(min_length=1, max_length=64)]
ParamKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests -------------------------------------------------------------------------------------------------


class BlastFields(_In):
    """A new blast's settings; as a multipart form they are text fields beside the `recipients` file."""

    name: str = Field(min_length=1, max_length=200, description="A name operators recognise.")
    template: str = Field(min_length=1, max_length=512, description="Template name (must be APPROVED).")
    language: str = Field(
        min_length=1, max_length=16, description="Template language code, e.g. en_US or id."
    )
    send_at: When | None = Field(default=None, description="When to send (default: now).")
    valid_until: When | None = Field(default=None, description="Do not send after this time.")
    key: Key | None = Field(
        default=None,
        description="Idempotency key (or the Idempotency-Key header): a retry returns the first result.",
    )
    constants: dict[ParamKey, str] = Field(
        default_factory=dict,
        description="Parameters for every recipient (a recipient's own value wins). In a form: const=NAME=VALUE, "
        "repeatable.",
    )
    draft: bool = Field(default=False, description="Create as DRAFT instead of scheduling it.")
    sender: str | None = Field(
        default=None,
        max_length=64,
        description="Phone number id to send from (a registered sender; default: WHATSAPP_PHONE_NUMBER_ID).",
    )
    senders: (
        Annotated[str, Field(max_length=1000)] | Annotated[list[SenderId], Field(max_length=100)] | None
    ) = Field(
        default=None,
        description='A pool of phone number ids of one WABA ("ID,ID", or a JSON list); recipients are spread '
        "over it. Not with sender.",
    )
    strict: bool = Field(
        default=False,
        description="Refuse (422, nothing created) when the blast would pass the portfolio's messaging limit "
        "instead of answering with messaging_limit_warning.",
    )
    local_time: bool = Field(
        default=False,
        description="Send each recipient at send_at as a wall-clock time in its own zone (the CSV's timezone "
        "column, else the number's zone, else timezone). Not with draft.",
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="Zone of recipients whose zone is not known, e.g. Asia/Makassar or WITA "
        "(default BLAST_TIMEZONE).",
    )
    quiet_hours: str | None = Field(
        default=None,
        max_length=32,
        description='A recipient-local window not to send in, e.g. "21:00-08:00"; "off" for none '
        "(default BLAST_QUIET_HOURS). A draft keeps them; they apply when it is scheduled (/reschedule).",
    )


class RecipientIn(_In):
    phone: str = Field(
        min_length=1,
        max_length=64,
        description="E.164 (+6281234567890) or national with BLAST_DEFAULT_REGION.",
    )
    params: dict[ParamKey, str] = Field(
        default_factory=dict, description='Template parameters by name ("first_name") or position ("1").'
    )


class CreateBlastJson(BlastFields):
    """A new blast with its recipients as a JSON list (row N of the report is the list's Nth item)."""

    recipients: list[RecipientIn] = Field(min_length=1)


class EmptyBody(_In):
    """No body, or an empty JSON object."""


class RetryIn(_In):
    include_unknown: bool = Field(
        default=False, description="Also resend recipients whose outcome is UNKNOWN."
    )


class RescheduleIn(_In):
    send_at: When


class BlastListQuery(_In):
    status: list[BlastStatus] = Field(default_factory=list, description="Only these statuses (repeatable).")
    q: str | None = Field(default=None, max_length=200, description="Text in the blast or template name.")
    cursor: str | None = Field(default=None, max_length=32, description="next_cursor of the previous page.")
    limit: int = Field(default=100, ge=1, le=1000)


class RecipientListQuery(_In):
    status: list[RecipientStatus] = Field(
        default_factory=list, description="Only these statuses (repeatable)."
    )
    cursor: str | None = Field(default=None, max_length=32, description="next_cursor of the previous page.")
    limit: int = Field(default=100, ge=1, le=1000)


class TemplateListQuery(_In):
    status: list[TemplateStatus] = Field(
        default_factory=list, description="Only these statuses (repeatable)."
    )


class SearchQuery(_In):
    phone: str = Field(min_length=1, max_length=64, description="The number, as in a recipients file.")
    limit: int = Field(default=200, ge=1, le=10_000)


# --- responses ------------------------------------------------------------------------------------------------


class Counts(_Out):
    """Recipients per bucket; they add up to the blast's total."""

    pending: int
    sending: int
    sent: int
    delivered: int
    read: int
    failed: int
    cancelled: int
    skipped: int
    unknown: int


class RejectedRowOut(_Out):
    row: int = Field(description="Data row number, from 1 (the list's item number for a JSON list).")
    value: str
    reason: str


class ImportReport(_Out):
    """What `blast-console blast create --json` reports, plus the duplicates count."""

    id: int
    status: BlastStatus
    existing: bool = Field(description="True when the idempotency key named an existing blast.")
    accepted: int = Field(description="Recipients stored.")
    rejected_total: int = Field(description="Rows refused (duplicates included).")
    duplicates: int = Field(description="Rows refused because their number came earlier.")
    rejected: list[RejectedRowOut] = Field(description="Refused rows with reasons (the first 10,000).")
    messaging_limit_warning: str | None = Field(
        default=None,
        description="Set when the blast would pass the portfolio's messaging limit (unique users per 24 h).",
    )
    quiet_hours: str | None = Field(
        default=None, description="Set when recipients are expected to wait for the end of the quiet hours."
    )


class BlastSummaryOut(_Out):
    id: int
    name: str
    template: str
    language: str
    status: BlastStatus
    send_at: Timestamp | None
    total: int
    counts: Counts
    last_error: str | None


class BlastPage(_Out):
    items: list[BlastSummaryOut]
    next_cursor: str | None = Field(description="Give it as ?cursor= for the next page; null on the last.")


class CostLineOut(_Out):
    market: str = Field(description="The rate card's market of the numbers (e.g. Indonesia).")
    category: str = Field(description="MARKETING, UTILITY or AUTHENTICATION.")
    messages: int
    price: str | None = Field(description="Price per message, a decimal in the card's currency (null: none).")
    amount: str | None = Field(description="messages x price, rounded to the currency's minor unit.")
    tiered: bool = Field(description="Volume tiers applied (from the month-to-date count).")


class CostOut(_Out):
    card_id: int | None = Field(description="The rate card used; null when none is imported.")
    currency: str | None
    category: str
    messages: int
    total: str | None = Field(description="A decimal in the card's currency; null without a rate card.")
    unpriced: int = Field(description="Messages with no price (no market or category in the card).")
    note: str = Field(description="The assumptions, in one line.")
    lines: list[CostLineOut]


class BlastCostOut(_Out):
    estimate: CostOut = Field(
        description="If every counted recipient is delivered (blast-console's estimate)."
    )
    actual: CostOut = Field(description="Billable deliveries reported by Meta's status webhooks so far.")


class ZoneOut(_Out):
    zone: str
    due_at: Timestamp | None
    total: int
    sent: int = Field(description="Accepted by Meta (sent, delivered or read).")
    waiting: int = Field(description="Pending or sending.")
    failed: int = Field(description="Failed or unknown.")


class BlastDetailOut(_Out):
    id: int
    name: str
    template: str
    language: str
    status: BlastStatus
    send_at: Timestamp | None
    valid_until: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    created_at: Timestamp
    created_by: str
    error: str | None
    error_code: int | None
    total: int
    counts: Counts
    constants: dict[str, str]
    cost: BlastCostOut
    senders: list[str] | None = Field(
        default=None, description="The phone number ids it sends from; null: the default sender."
    )
    local_time: str | None = Field(
        default=None, description="Local-time blasts: the wall-clock send time in every recipient's zone."
    )
    timezone: str | None = Field(
        default=None, description="Local-time blasts: the zone of recipients without one."
    )
    zones: list[ZoneOut] = Field(
        default_factory=list, description="Local-time blasts: per zone, when it is due and how far it got."
    )


class RecipientOut(_Out):
    id: int
    row: int
    phone: str
    status: RecipientStatus
    attempts: int
    wamid: str | None
    error_code: int | None
    error_text: str | None
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    read_at: Timestamp | None
    failed_at: Timestamp | None


class RecipientPageOut(_Out):
    items: list[RecipientOut]
    next_cursor: str | None = Field(description="Give it as ?cursor= for the next page; null on the last.")


class ActionOut(_Out):
    """A blast after pause, resume or cancel."""

    id: int
    status: BlastStatus
    recipients_cancelled: int | None = Field(
        default=None, description="Cancel only: pending recipients cancelled."
    )


class RetryOut(_Out):
    id: int
    status: BlastStatus
    requeued: int
    skipped_opted_out: int
    skipped_recent_cap: int


class RescheduleOut(_Out):
    id: int
    status: BlastStatus
    send_at: Timestamp
    quiet_hours: str | None = Field(
        default=None,
        description="Set when a draft with quiet hours was scheduled and recipients are expected to wait.",
    )


class TemplateOut(_Out):
    name: str
    language: str
    category: str
    status: TemplateStatus
    parameter_format: str
    parameters: list[str]
    rejection_reason: str | None
    last_synced_at: Timestamp | None


class TemplateList(_Out):
    items: list[TemplateOut]


class SearchHitOut(_Out):
    blast_id: int
    blast: str
    template: str
    language: str
    blast_status: BlastStatus
    status: RecipientStatus
    wamid: str | None
    error_code: int | None
    error: str | None
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    read_at: Timestamp | None
    failed_at: Timestamp | None


class SearchResult(_Out):
    items: list[SearchHitOut]


class StreamOut(_Out):
    name: str
    length: int
    pending: int
    consumers: int


class DaemonOut(_Out):
    id: str
    host: str
    last_seen: float = Field(description="Unix time of its last heartbeat.")
    chunks: list[str]


class RateOut(_Out):
    limit: float
    current: float


class QueueOut(_Out):
    """The shape of `blast-console queue stats --json`."""

    streams: list[StreamOut]
    daemons: list[DaemonOut]
    rate: RateOut


class Problem(_Out):
    """An error (RFC 9457 problem details); `detail` is the CLI's one-line message."""

    model_config = ConfigDict(extra="allow")

    type: Literal["about:blank"] = "about:blank"
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request's path.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="422 from request validation: each field."
    )
