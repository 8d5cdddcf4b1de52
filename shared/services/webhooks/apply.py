"""Owns applying stored events in batches: claim (FOR UPDATE SKIP LOCKED on PostgreSQL, so daemons take
disjoint batches), parse, apply statuses forward-only, park orphans, opt-outs, mark processed; an event that
breaks its batch is retried alone and set aside after MAX_ATTEMPTS.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as TallyCounter
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from shared import metrics
from shared.actors import daemon_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.models import OrphanStatus, Recipient, WebhookEvent
from shared.parsing.webhook_payload import Parsed, StatusItem, parse_body
from shared.services import delivery, suppression
from shared.services.delivery import DeliveryUpdate
from shared.services.webhooks.effects import after_commit
from shared.services.webhooks.report import ApplyConfig, ApplyReport, merge
from shared.text import first_line
from shared.whatsapp.errors import rule_for

log = logging.getLogger(__name__)

#: Events applied per transaction by the applier, parsed PARSE_SLICE at a time between yields to the loop.
APPLY_BATCH = 300
PARSE_SLICE = 50
#: An event failing this many times is set aside (processed, its error kept) so that it cannot block others.
MAX_ATTEMPTS = 5


def _counted_failures(result: delivery.DeliveryResult) -> dict[int, int]:
    """Failures that say something about the blast: opt-outs (131050) are the user's choice, not counted."""
    out: dict[int, int] = defaultdict(int)
    for blast_id, codes in result.failure_codes.items():
        for code, n in codes.items():
            if not rule_for(code, None).opted_out:
                out[blast_id] += n
    return dict(out)


async def apply_statuses(
    items: Sequence[StatusItem], tx: BaseDBAsyncClient, report: ApplyReport, *, actor: str
) -> list[DeliveryUpdate]:
    """Apply statuses and their opt-outs in `tx`; returns the updates that matched no recipient."""
    if not items:
        return []
    result = await delivery.apply_delivery_updates([i.update for i in items], conn=tx)
    report.statuses += len(items)
    report.applied += result.applied
    report.ignored += result.ignored
    report.billable.extend(result.billable)
    for blast_id, n in _counted_failures(result).items():
        report.failures_by_blast[blast_id] = report.failures_by_blast.get(blast_id, 0) + n
    opted = [i for i in items if i.opted_out]
    if opted:
        # The recipient row's number is the one the operator knows; Meta's wa_id may differ (Brazil, Mexico).
        rows = (
            await Recipient.filter(wamid__in=[i.update.wamid for i in opted])
            .using_db(tx)
            .values_list("wamid", "phone")
        )
        by_wamid = dict(rows)
        ids = [i.update.recipient_id for i in opted if i.update.recipient_id is not None]
        by_id = (
            dict(await Recipient.filter(id__in=ids).using_db(tx).values_list("id", "phone")) if ids else {}
        )
        phones: list[str] = []
        for i in opted:
            phone = by_wamid.get(i.update.wamid) or by_id.get(i.update.recipient_id or -1)
            phones.extend(p for p in (phone, i.phone) if p)
        added = await suppression.opt_out_131050(phones, actor=actor, conn=tx)
        report.opt_outs += len(added)
    return result.unmatched


async def _park_orphans(
    unmatched: Sequence[DeliveryUpdate],
    phones: Mapping[str, str | None],
    tx: BaseDBAsyncClient,
    retention_s: float,
) -> None:
    now = utcnow()
    await OrphanStatus.bulk_create(
        [
            OrphanStatus(
                wamid=u.wamid,
                status=u.status,
                at=u.at,
                recipient_id=u.recipient_id,
                phone=phones.get(u.wamid),
                error_code=u.error_code,
                error_text=u.error_text,
                **(delivery.pricing_values(u.pricing) if u.pricing is not None else {}),
                received_at=now,
                next_try_at=now + timedelta(seconds=1),
                expires_at=now + timedelta(seconds=retention_s),
                attempts=0,
            )
            for u in unmatched
        ],
        using_db=tx,
    )


async def _apply_parsed(
    parsed: Sequence[Parsed], tx: BaseDBAsyncClient, report: ApplyReport, cfg: ApplyConfig, *, actor: str
) -> None:
    statuses = [s for p in parsed for s in p.statuses]
    unmatched = await apply_statuses(statuses, tx, report, actor=actor)
    if unmatched:
        phones = {s.update.wamid: s.phone for s in statuses}
        await _park_orphans(unmatched, phones, tx, cfg.orphan_retention_s)
        report.orphaned += len(unmatched)
    by_source: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in parsed:
        for o in p.opt_outs:
            by_source[(o.source, o.reason)].append(o.phone)
    for (source, reason), phones_list in by_source.items():
        added = await suppression.suppress(phones_list, reason=reason, source=source, actor=actor, conn=tx)
        report.opt_outs += len(added)
        if added:
            metrics.OPT_OUTS.labels(source).inc(len(added))
    for p in parsed:
        for phone in p.opt_ins:
            await suppression.remove_opt_out(phone, actor=actor, conn=tx)


async def apply_pending(settings: Settings, *, limit: int = APPLY_BATCH) -> ApplyReport:
    """Apply up to `limit` stored events in one transaction (events other daemons hold are skipped on
    PostgreSQL). An event that breaks the batch is retried alone, then set aside after MAX_ATTEMPTS.
    """
    cfg = ApplyConfig.of(settings)
    report = ApplyReport()
    actor = daemon_actor()
    template_events: list[dict[str, Any]] = []
    quality_events: list[dict[str, Any]] = []
    category_events: list[dict[str, Any]] = []
    field_events: list[tuple[str, dict[str, Any]]] = []
    events: list[tuple[int, str]] = []
    parsed: list[Parsed] = []
    try:
        async with in_transaction() as tx:
            events = await claim_events(tx, limit)
            if not events:
                return report
            parsed = []
            for start in range(0, len(events), PARSE_SLICE):
                # Parsing is CPU work on the loop that also acknowledges webhooks: let their handlers in.
                parsed.extend(
                    parse_body(body, keywords=cfg.keywords, payloads=cfg.payloads)
                    for _, body in events[start : start + PARSE_SLICE]
                )
                await asyncio.sleep(0)
            await _apply_parsed(parsed, tx, report, cfg, actor=actor)
            await _finish(events, parsed, tx, cfg)
    except Exception as exc:
        if not events:
            raise
        log.warning(
            "applying %s webhook events failed (%s); applying them one by one", len(events), first_line(exc)
        )
        return await _apply_one_by_one([event_id for event_id, _ in events], settings)
    report.events = len(events)
    kinds: TallyCounter[str] = TallyCounter()
    for p in parsed:
        kinds.update(p.kinds)
        template_events.extend(p.template_events)
        quality_events.extend(p.quality_events)
        category_events.extend(p.category_events)
        field_events.extend(p.field_events)
    for kind, n in kinds.items():
        metrics.WEBHOOK_EVENTS.labels(kind).inc(n)
    await after_commit(settings, report, template_events, quality_events, category_events, field_events)
    return report


#: The applier's claim on PostgreSQL (run with sorting off, see claim_events).
CLAIM_PG = (
    "SELECT id, body FROM webhook_event WHERE processed_at IS NULL "
    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)


async def claim_events(tx: BaseDBAsyncClient, limit: int) -> list[tuple[int, str]]:
    """The oldest unapplied events (id, body); on PostgreSQL locked, skipping those another daemon holds."""
    if tx.capabilities.dialect == "postgres":
        # The partial index webhook_event_pending gives the oldest pending rows in id order. When the statistics
        # say few rows are pending (they usually are, and a burst outruns autovacuum's ANALYZE), the planner
        # prefers a bitmap or sequential scan plus a sort, which reads and sorts the whole backlog, bodies
        # included, on every claim: exactly when a backlog builds up. Sorting is off for this one statement, so
        # the only plans left read in id order, and the partial index is the cheapest of them.
        await tx.execute_script("SET LOCAL enable_sort = off")
        _, rows = await tx.execute_query(CLAIM_PG, [limit])
        await tx.execute_script("SET LOCAL enable_sort TO DEFAULT")
        return [(int(r["id"]), str(r["body"])) for r in rows]
    query = WebhookEvent.filter(processed_at__isnull=True).order_by("id").limit(limit).using_db(tx)
    return [(int(i), str(b)) for i, b in await query.values_list("id", "body")]


async def _finish(
    events_done: Sequence[tuple[int, str]], parsed: Sequence[Parsed], tx: BaseDBAsyncClient, cfg: ApplyConfig
) -> None:
    now = utcnow()
    noted = [(e, p) for e, p in zip(events_done, parsed, strict=True) if p.problems]
    for e, p in noted:
        log.info("webhook event %s: %s", e[0], "; ".join(p.problems)[:300])
    ids = [e[0] for e in events_done]
    if cfg.event_retention_s <= 0:
        await WebhookEvent.filter(id__in=ids).using_db(tx).delete()
        return
    clean = [e[0] for e, p in zip(events_done, parsed, strict=True) if not p.problems]
    if clean and tx.capabilities.dialect == "postgres":
        # One array parameter instead of an IN list of hundreds (built and planned anew for every batch size).
        await tx.execute_query(
            "UPDATE webhook_event SET processed_at = $1, attempts = attempts + 1 WHERE id = ANY($2::bigint[])",
            [now, clean],
        )
    elif clean:
        await (
            WebhookEvent.filter(id__in=clean)
            .using_db(tx)
            .update(processed_at=now, attempts=F("attempts") + 1)
        )
    for e, p in noted:
        await (
            WebhookEvent.filter(id=e[0])
            .using_db(tx)
            .update(processed_at=now, attempts=F("attempts") + 1, error="; ".join(p.problems)[:1000])
        )


async def _apply_one_by_one(ids: Sequence[int], settings: Settings) -> ApplyReport:
    cfg = ApplyConfig.of(settings)
    total = ApplyReport()
    actor = daemon_actor()
    for event_id in ids:
        report = ApplyReport()
        parsed: Parsed | None = None
        try:
            async with in_transaction() as tx:
                found = [
                    (int(i), str(b))
                    for i, b in await WebhookEvent.filter(id=event_id, processed_at__isnull=True)
                    .using_db(tx)
                    .values_list("id", "body")
                ]
                if not found:
                    continue
                parsed = parse_body(found[0][1], keywords=cfg.keywords, payloads=cfg.payloads)
                await _apply_parsed([parsed], tx, report, cfg, actor=actor)
                await _finish(found, [parsed], tx, cfg)
        except Exception as exc:
            total.failed_events += 1
            await _note_attempt(event_id, exc)
            continue
        report.events = 1
        for kind, n in parsed.kinds.items():
            metrics.WEBHOOK_EVENTS.labels(kind).inc(n)
        await after_commit(
            settings,
            report,
            parsed.template_events,
            parsed.quality_events,
            parsed.category_events,
            parsed.field_events,
        )
        merge(total, report)
    return total


async def _note_attempt(event_id: int, exc: BaseException) -> None:
    try:
        row = await WebhookEvent.get_or_none(id=event_id)
        if row is None:
            return
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "error": first_line(exc)[:1000]}
        if attempts >= MAX_ATTEMPTS:
            values["processed_at"] = utcnow()
            log.error("webhook event %s set aside after %s attempts: %s", event_id, attempts, first_line(exc))
        await WebhookEvent.filter(id=event_id).update(**values)
    except Exception as again:  # the database itself is away: the event stays pending, retried later
        log.warning("webhook event %s: could not record the failed attempt (%s)", event_id, first_line(again))
