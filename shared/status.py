"""Provides the status enums and THE transition tables of blasts and recipients (the one state machine).

Every writer of a status goes through `shared.services.transitions`, which consults these tables; nothing else
assigns `.status`.
"""

from __future__ import annotations

from enum import Enum


class BlastStatus(str, Enum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    PROCESSING = "PROCESSING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class RecipientStatus(str, Enum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    UNKNOWN = "UNKNOWN"


class TemplateStatus(str, Enum):
    """Meta's template statuses; Meta's PENDING is shown (and stored) as SUBMITTED."""

    SUBMITTED = "SUBMITTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    ARCHIVED = "ARCHIVED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"

    @classmethod
    def from_meta(cls, value: str) -> TemplateStatus:
        """Map a status (or webhook event) as Meta writes it to ours.

        Raises:
            ValueError: for a value Meta does not use.
        """
        value = value.strip().upper()
        aliases = {
            "PENDING": "SUBMITTED",
            "REINSTATED": "APPROVED",
            "UNARCHIVED": "APPROVED",
            "FLAGGED": "APPROVED",
        }
        return cls(aliases.get(value, value))


B, R = BlastStatus, RecipientStatus

#: Blast transitions: (from, to) pairs. COMPLETED -> PROCESSING and FAILED -> PROCESSING are the operator's
#: retry (COMPLETED only when some recipients failed: the service checks that).
BLAST_TRANSITIONS: frozenset[tuple[BlastStatus, BlastStatus]] = frozenset(
    {
        (B.DRAFT, B.SCHEDULED),
        (B.SCHEDULED, B.PROCESSING),
        (B.SCHEDULED, B.PAUSED),
        (B.PAUSED, B.SCHEDULED),
        (B.PROCESSING, B.PAUSED),
        (B.PAUSED, B.PROCESSING),
        (B.PROCESSING, B.COMPLETED),
        (B.PROCESSING, B.FAILED),
        (B.DRAFT, B.CANCELLED),
        (B.SCHEDULED, B.CANCELLED),
        (B.PROCESSING, B.CANCELLED),
        (B.PAUSED, B.CANCELLED),
        (B.FAILED, B.PROCESSING),
        (B.COMPLETED, B.PROCESSING),
    }
)

BLAST_TERMINAL = frozenset({B.COMPLETED, B.FAILED, B.CANCELLED})
BLAST_EDITABLE = frozenset({B.DRAFT, B.SCHEDULED})
#: Blasts whose recipients may still be sent.
BLAST_ACTIVE = frozenset({B.SCHEDULED, B.PROCESSING})

#: Recipient transitions. Delivery statuses move only forward by rank (see DELIVERY_RANK); a FAILED reported by
#: webhook after SENT is applied, after DELIVERED/READ it is logged and not applied.
RECIPIENT_TRANSITIONS: frozenset[tuple[RecipientStatus, RecipientStatus]] = frozenset(
    {
        # sending
        (R.PENDING, R.SENDING),
        (R.SENDING, R.SENT),
        (R.SENDING, R.FAILED),
        (R.SENDING, R.PENDING),  # retry later (throttled, transient)
        (R.SENDING, R.UNKNOWN),  # the request may have left: timeout, crash
        # before sending
        (R.PENDING, R.CANCELLED),
        (R.PENDING, R.SKIPPED),
        (R.PENDING, R.FAILED),  # validation failure found before a request (e.g. 24 h window not over)
        # delivery, forward only (webhooks may overtake the send result)
        (R.SENT, R.DELIVERED),
        (R.SENT, R.READ),
        (R.DELIVERED, R.READ),
        (R.SENDING, R.DELIVERED),
        (R.SENDING, R.READ),
        (R.UNKNOWN, R.SENT),
        (R.UNKNOWN, R.DELIVERED),
        (R.UNKNOWN, R.READ),
        (R.SENT, R.FAILED),  # failed webhook after sent
        (R.UNKNOWN, R.FAILED),  # a failed webhook reconciles an UNKNOWN attempt
        # a late sent/delivered/read of an earlier attempt of a re-queued recipient: it went out, not again
        (R.PENDING, R.SENT),
        (R.PENDING, R.DELIVERED),
        (R.PENDING, R.READ),
        # operator
        (R.FAILED, R.PENDING),
        (R.UNKNOWN, R.PENDING),
    }
)

#: Rank of delivery statuses: a status never moves to a lower rank.
DELIVERY_RANK: dict[RecipientStatus, int] = {R.SENT: 1, R.DELIVERED: 2, R.READ: 3}

RECIPIENT_COUNTER_FIELDS: dict[RecipientStatus, str] = {s: f"n_{s.value.lower()}" for s in RecipientStatus}


def blast_sources(to: BlastStatus) -> frozenset[BlastStatus]:
    """Statuses a blast may move to `to` from."""
    return frozenset(src for src, dst in BLAST_TRANSITIONS if dst == to)


def blast_allowed(src: BlastStatus, dst: BlastStatus) -> bool:
    return (src, dst) in BLAST_TRANSITIONS


def recipient_allowed(src: RecipientStatus, dst: RecipientStatus) -> bool:
    return (src, dst) in RECIPIENT_TRANSITIONS
