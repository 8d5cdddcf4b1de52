"""Owns the applier's report (`ApplyReport`), its settings snapshot and small shared helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.config import Settings
from shared.parsing.webhook_payload import opt_out_words

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplyReport:
    events: int = 0
    statuses: int = 0
    applied: int = 0
    ignored: int = 0
    orphaned: int = 0
    reconciled: int = 0
    expired: int = 0
    opt_outs: int = 0
    failed_events: int = 0
    failures_by_blast: dict[int, int] = field(default_factory=dict)
    paused_blasts: list[int] = field(default_factory=list)
    #: (pricing category, phone) of the billable deliveries applied (for blast_billable_messages_total).
    billable: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApplyConfig:
    keywords: frozenset[str]
    payloads: frozenset[str]
    orphan_retention_s: float
    event_retention_s: float

    @classmethod
    def of(cls, settings: Settings) -> ApplyConfig:
        return cls(
            opt_out_words(settings.BLAST_OPT_OUT_KEYWORDS),
            opt_out_words(settings.BLAST_OPT_OUT_PAYLOADS),
            settings.BLAST_ORPHAN_STATUS_RETENTION_S,
            settings.BLAST_WEBHOOK_EVENT_RETENTION_S,
        )


def merge(total: ApplyReport, report: ApplyReport) -> None:
    total.events += report.events
    total.statuses += report.statuses
    total.applied += report.applied
    total.ignored += report.ignored
    total.orphaned += report.orphaned
    total.reconciled += report.reconciled
    total.expired += report.expired
    total.opt_outs += report.opt_outs
    total.failed_events += report.failed_events
    for b, n in report.failures_by_blast.items():
        total.failures_by_blast[b] = total.failures_by_blast.get(b, 0) + n
    total.paused_blasts.extend(report.paused_blasts)
    total.billable.extend(report.billable)
