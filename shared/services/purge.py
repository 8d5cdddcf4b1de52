"""Provides the personal-data purge: recipients of blasts finished more than N days ago lose their phone
number, template parameters and message ids; the blast, its per-status counters and every recipient's status
stay, so reports and totals are unchanged.

The phone column is NOT NULL and unique per blast, so a purged number becomes the stable, non-identifying
placeholder `purged:<recipient id>` instead of NULL (no migration needed; a re-run skips rows already purged).
Recipients of blasts that are not finished (DRAFT, SCHEDULED, PROCESSING, PAUSED) are never touched, and a
blast is re-checked under a row lock right before its rows are purged. Processed raw webhook events (whose
bodies carry numbers) older than the cutoff are deleted too. The suppression list is kept: it is what stops
sends to people who opted out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from shared.clock import utcnow
from shared.models import Blast, Recipient, WebhookEvent
from shared.services import transitions
from shared.status import BLAST_TERMINAL, BlastStatus

log = logging.getLogger(__name__)

#: Prefix of the placeholder that replaces a purged phone number (never a valid E.164 number: no "+").
PURGED_PREFIX = "purged:"
#: The last purge of a blast, in its audit trail.
AUDIT_ACTION = "purge_personal_data"


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge did (or, with `dry_run`, would do).

    Attributes:
        cutoff: blasts finished before this moment were purged.
        blast_ids: the finished blasts whose recipients were purged (or still had data to purge).
        recipients: recipients whose phone number, parameters and message ids were removed.
        webhook_events: processed raw webhook events deleted.
        dry_run: nothing was changed.
    """

    cutoff: datetime
    blast_ids: list[int]
    recipients: int
    webhook_events: int
    dry_run: bool


def is_purged(phone: str) -> bool:
    """True for the placeholder a purge leaves instead of a phone number."""
    return phone.startswith(PURGED_PREFIX)


def _finished_before(cutoff: datetime) -> Q:
    # A blast moved to a terminal status without finished_at (older code paths) counts from its last update.
    return Q(status__in=list(BLAST_TERMINAL)) & (
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, updated_at__lt=cutoff)
    )


def _unpurged(blast_id: int) -> Q:
    return Q(blast_id=blast_id) & ~Q(phone__startswith=PURGED_PREFIX)


async def purge_personal_data(
    *, older_than_days: float, actor: str, dry_run: bool = False, now: datetime | None = None
) -> PurgeResult:
    """Remove recipients' personal data from blasts finished more than `older_than_days` ago.

    Args:
        older_than_days: age of a blast's end (finished_at) beyond which its recipients are purged.
        actor: who ran it (OS user), recorded in one audit entry per purged blast.
        dry_run: only count what would be purged.
        now: the current time (tests).

    Returns:
        The blasts and the number of recipients purged (or that would be).

    Raises:
        ValueError: `older_than_days` is negative.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    candidates = cast(
        list[int], await Blast.filter(_finished_before(cutoff)).order_by("id").values_list("id", flat=True)
    )
    blast_ids: list[int] = []
    total = 0
    for blast_id in candidates:
        if dry_run:
            count = await Recipient.filter(_unpurged(blast_id)).count()
        else:
            count = await _purge_blast(blast_id, cutoff, actor=actor, older_than_days=older_than_days)
        if count:
            blast_ids.append(blast_id)
            total += count
    events = await _webhook_events(cutoff, dry_run=dry_run)
    if not dry_run:
        log.info(
            "personal data purged: %s recipients of %s blasts finished before %s; %s webhook events deleted",
            total,
            len(blast_ids),
            cutoff.isoformat(timespec="seconds"),
            events,
        )
    return PurgeResult(
        cutoff=cutoff, blast_ids=blast_ids, recipients=total, webhook_events=events, dry_run=dry_run
    )


async def _purge_blast(blast_id: int, cutoff: datetime, *, actor: str, older_than_days: float) -> int:
    """Purge one blast's recipients in one transaction, if the blast is still finished and old enough."""
    async with in_transaction() as tx:
        # The row lock (PostgreSQL; SQLite serialises writers anyway) keeps a retry from starting meanwhile.
        blast = (
            await Blast.filter(_finished_before(cutoff), id=blast_id).select_for_update().using_db(tx).first()
        )
        if blast is None:
            return 0
        conn = tx
        placeholder = f"'{PURGED_PREFIX}' || CAST(id AS TEXT)"
        sql = (
            f"UPDATE recipient SET phone = {placeholder}, params = '{{}}', wamid = NULL, wa_id = NULL "
            f"WHERE blast_id = {_param(conn, 1)} AND phone NOT LIKE '{PURGED_PREFIX}%'"
        )
        count, _ = await conn.execute_query(sql, [blast_id])
        count = int(count)
        if count:
            await transitions.audit(
                actor=actor,
                action=AUDIT_ACTION,
                entity="blast",
                entity_id=blast_id,
                detail={
                    "recipients": count,
                    "older_than_days": older_than_days,
                    "status": BlastStatus(blast.status).value,
                    "total": blast.total,
                },
                conn=tx,
            )
            log.info("blast %s: personal data of %s recipients purged", blast_id, count)
    return count


async def _webhook_events(cutoff: datetime, *, dry_run: bool) -> int:
    """Processed raw webhook events received before the cutoff: counted, or deleted."""
    query = WebhookEvent.filter(processed_at__isnull=False, received_at__lt=cutoff)
    if dry_run:
        return await query.count()
    return int(await query.delete())


def _param(conn: object, index: int) -> str:
    """The positional placeholder of the connection's dialect ($1 on PostgreSQL, ? on SQLite)."""
    dialect = getattr(getattr(conn, "capabilities", None), "dialect", "")
    return f"${index}" if dialect == "postgres" else "?"


async def purged_count(blast_id: int) -> int:
    """How many recipients of a blast have been purged."""
    return await Recipient.filter(blast_id=blast_id, phone__startswith=PURGED_PREFIX).count()
