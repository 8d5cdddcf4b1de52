"""Provides the Blast model: one template sent to a list of recipients at a chosen time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from shared.status import BlastStatus

if TYPE_CHECKING:
    from shared.models.template import Template


class Blast(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    template: fields.ForeignKeyRelation[Template] = fields.ForeignKeyField(
        "models.Template", related_name="blasts", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(BlastStatus, max_length=16, default=BlastStatus.DRAFT, db_index=True)
    send_at = fields.DatetimeField(null=True, db_index=True)
    valid_until = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    #: Parameters that are the same for every recipient (header/button constants), by column name.
    constants: Any = fields.JSONField(default=dict)
    #: Phone number ids of the sender numbers (a pool when several), or None for the default sender.
    senders: Any = fields.JSONField(null=True)
    #: Idempotency key of `create`: creating again with the same key returns this blast.
    client_key = fields.CharField(max_length=200, null=True, unique=True)
    last_error = fields.TextField(null=True)
    error_code = fields.IntField(null=True)
    created_by = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    #: Bumped by every edit/reschedule/resume, so a stale wake-up or chunk can tell it is outdated.
    generation = fields.IntField(default=0)
    #: Local-time blasts: the wall-clock send time ("2026-12-08T09:00") each recipient gets in its own zone
    #: (None: every recipient is due at send_at), the zone of recipients whose zone is not known, and the
    #: distinct due times of its recipients (UTC ISO strings, earliest first; send_at is the first).
    local_time = fields.CharField(max_length=32, null=True)
    timezone = fields.CharField(max_length=64, null=True)
    due_times: Any = fields.JSONField(null=True)
    #: Quiet hours ("21:00-08:00", each recipient's local time) in which its messages wait (None: off). A blast
    #: with quiet hours is a due-time blast like a local-time one (due_times set, claims by due group).
    quiet_hours = fields.CharField(max_length=16, null=True)
    #: Due-time blasts: due groups up to this due time are sent however late (they started on time, or the
    #: operator resumed the blast after they came due); a later group more than BLAST_MISSED_CUTOFF past its time
    #: pauses the blast (see services.blast_lifecycle.check_due_groups).
    accepted_due_at = fields.DatetimeField(null=True)

    # Per-bucket counters, changed in the same transaction as the recipients (see services.transitions).
    total = fields.IntField(default=0)
    n_pending = fields.IntField(default=0)
    n_sending = fields.IntField(default=0)
    n_sent = fields.IntField(default=0)
    n_delivered = fields.IntField(default=0)
    n_read = fields.IntField(default=0)
    n_failed = fields.IntField(default=0)
    n_cancelled = fields.IntField(default=0)
    n_skipped = fields.IntField(default=0)
    n_unknown = fields.IntField(default=0)

    class Meta:
        table = "blast"

    def counts(self) -> dict[str, int]:
        """The exclusive recipient buckets; they add up to `total`."""
        return {
            "pending": self.n_pending,
            "sending": self.n_sending,
            "sent": self.n_sent,
            "delivered": self.n_delivered,
            "read": self.n_read,
            "failed": self.n_failed,
            "cancelled": self.n_cancelled,
            "skipped": self.n_skipped,
            "unknown": self.n_unknown,
        }
