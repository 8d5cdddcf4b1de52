"""Owns the parked statuses (table orphan_status): retried with backoff until their recipient is known, or expired."""

from __future__ import annotations

import logging
from datetime import timedelta

from tortoise.transactions import in_transaction

from shared import metrics
from shared.actors import daemon_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.models import OrphanStatus
from shared.parsing.webhook_payload import StatusItem
from shared.services.delivery import DeliveryUpdate, Pricing
from shared.services.webhooks.apply import apply_statuses
from shared.services.webhooks.effects import after_commit
from shared.services.webhooks.report import ApplyReport
from shared.whatsapp.errors import rule_for

log = logging.getLogger(__name__)

#: Orphan statuses are retried after 1, 2, 4 … s, at most this far apart, until they expire.
ORPHAN_MAX_BACKOFF_S = 300.0
ORPHAN_BATCH = 1000


def _stored_pricing(o: OrphanStatus) -> Pricing | None:
    values = (o.pricing_category, o.pricing_type, o.pricing_model, o.billable)
    return None if all(v is None for v in values) else Pricing(*values)


async def retry_orphans(settings: Settings, *, limit: int = ORPHAN_BATCH) -> ApplyReport:
    """Try due orphan statuses again (their send result may have been written since); drop expired ones."""
    report = ApplyReport()
    now = utcnow()
    async with in_transaction() as tx:
        expired = await OrphanStatus.filter(expires_at__lte=now).using_db(tx).delete()
        report.expired = int(expired or 0)
        rows = await (
            OrphanStatus.filter(next_try_at__lte=now)
            .order_by("next_try_at")
            .limit(limit)
            .select_for_update(skip_locked=True)
            .using_db(tx)
        )
        if rows:
            items = [
                StatusItem(
                    DeliveryUpdate(
                        wamid=o.wamid,
                        status=o.status,
                        at=o.at,
                        recipient_id=o.recipient_id,
                        error_code=o.error_code,
                        error_text=o.error_text,
                        pricing=_stored_pricing(o),
                    ),
                    o.phone,
                    opted_out=o.error_code is not None and rule_for(o.error_code, None).opted_out,
                )
                for o in rows
            ]
            unmatched = await apply_statuses(items, tx, report, actor=daemon_actor())
            still = {(u.wamid, u.status, u.at) for u in unmatched}
            done = [o.id for o in rows if (o.wamid, o.status, o.at) not in still]
            report.reconciled = len(done)
            if done:
                await OrphanStatus.filter(id__in=done).using_db(tx).delete()
            for o in rows:
                if (o.wamid, o.status, o.at) in still:
                    backoff = min(ORPHAN_MAX_BACKOFF_S, 2.0 ** (o.attempts + 1))
                    await (
                        OrphanStatus.filter(id=o.id)
                        .using_db(tx)
                        .update(attempts=o.attempts + 1, next_try_at=now + timedelta(seconds=backoff))
                    )
    if report.reconciled:
        metrics.WEBHOOK_ORPHANS.labels("reconciled").inc(report.reconciled)
        log.info("%s parked statuses matched their recipients", report.reconciled)
    if report.expired:
        metrics.WEBHOOK_ORPHANS.labels("expired").inc(report.expired)
        log.info("%s statuses matched no recipient and expired", report.expired)
    await after_commit(settings, report, (), ())
    return report
