"""Owns what applying webhooks does outside the transaction: the failure-rate feed that auto-pauses a blast,
template status/quality/category events, metrics and billable counters (`after_commit`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared import metrics
from shared.actors import daemon_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import InvalidTransition, NotFound
from shared.events import publish
from shared.models import Template
from shared.services import failure_rate, pricing, senders, template_sync, transitions
from shared.services.webhooks.report import ApplyReport
from shared.status import BlastStatus
from shared.text import first_line

log = logging.getLogger(__name__)


async def note_failures(
    settings: Settings, failures_by_blast: Mapping[int, int], client: aioredis.Redis | None = None
) -> list[int]:
    """Feed failures reported by status webhooks into each blast's failure-rate window (Redis key
    `{prefix}:failwin:{blast_id}`, see shared.services.failure_rate) and pause a PROCESSING blast whose window
    trips. Opt-outs (131050) are not passed here: they are the user's choice, not a fault of the blast.

    Returns:
        The blasts this call paused.

    Raises:
        redis.exceptions.RedisError: Redis unreachable.
    """
    paused: list[int] = []
    for blast_id, n in failures_by_blast.items():
        if n <= 0:
            continue
        window = await failure_rate.note_results(settings, blast_id, failed=n, client=client)
        if not window.tripped:
            continue
        reason = failure_rate.pause_reason(window)
        try:
            moved = await transitions.transition_blast(
                blast_id,
                BlastStatus.PAUSED,
                actor=daemon_actor(),
                action="pause",
                sources=[BlastStatus.PROCESSING],
                detail={"reason": reason},
                values={"last_error": reason},
            )
        except (InvalidTransition, NotFound):
            continue  # finished, cancelled or already paused: nothing to stop
        if moved:
            metrics.BLASTS_PAUSED_BY_ERROR.inc()
            await failure_rate.reset_window(settings, blast_id, client=client)
            await publish(settings, "paused", blast_id=blast_id)
            paused.append(blast_id)
    return paused


# ----------------------------------------------------------------------------------------------------------
# templates
# ----------------------------------------------------------------------------------------------------------


async def apply_template_event(value: Mapping[str, Any], *, settings: Settings) -> list[int]:
    """Apply one `message_template_status_update` (shared.services.template_sync mirrors the status and pauses
    the blasts of a template that can no longer be sent).

    Returns:
        The blasts paused.
    """
    result = await template_sync.apply_template_event(value, settings=settings, actor=daemon_actor())
    if result is None:
        return []
    if result.old != result.new:
        metrics.TEMPLATE_UPDATES.labels(result.new.value).inc()
    return [p.blast_id for p in result.paused_blasts]


async def apply_quality_event(value: Mapping[str, Any]) -> None:
    meta_id = value.get("message_template_id")
    score = value.get("new_quality_score")
    if meta_id is None or not isinstance(score, str):
        return
    await Template.filter(meta_id=str(meta_id)).update(quality_score=score[:16], updated_at=utcnow())


#: A handler of one webhook `field` the payload parser has no rule for (e.g. "phone_number_quality_update"):
#: called after the batch's commit with the change's `value`; it must be idempotent (an event can be applied
#: again after a crash) and raise nothing it wants retried (failures are logged, the event is not re-applied).
FieldHandler = Callable[[Mapping[str, Any], Settings], Awaitable[None]]


#: The dispatch point for such fields: field name -> handler. Fields without a handler are counted ("other")
#: and dropped.
async def _number_update(value: Mapping[str, Any], settings: Settings) -> None:
    """`phone_number_quality_update` (THROUGHPUT_UPGRADE, quality, messaging limit): the sender's standing is
    stored and every daemon's limiter for that number follows at once."""
    if await senders.apply_number_update(value):
        await publish(settings, "sender_changed")


FIELD_HANDLERS: dict[str, FieldHandler] = {senders.NUMBER_UPDATE_FIELD: _number_update}


async def dispatch_field_events(settings: Settings, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Hand each (field, value) to the handler registered in FIELD_HANDLERS, if any."""
    for name, value in events:
        handler = FIELD_HANDLERS.get(name)
        if handler is None:
            continue
        try:
            await handler(value, settings)
        except Exception as exc:
            log.warning("webhook %s event not applied: %s", name, first_line(exc))


async def after_commit(
    settings: Settings,
    report: ApplyReport,
    template_events: Sequence[dict[str, Any]],
    quality_events: Sequence[dict[str, Any]],
    category_events: Sequence[dict[str, Any]] = (),
    field_events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> None:
    """Side effects outside the transaction: Redis counters, metrics, template changes (rare; a missed one is
    caught by the periodic template sync), the other fields' handlers (FIELD_HANDLERS).
    """
    if report.orphaned:
        metrics.WEBHOOK_ORPHANS.labels("unmatched").inc(report.orphaned)
    if report.billable:
        try:
            await pricing.count_billable(report.billable)
        except Exception as exc:
            log.warning("billable messages not counted in the metrics: %s", first_line(exc))
    if report.failures_by_blast:
        metrics.MESSAGES.labels("failed_webhook").inc(sum(report.failures_by_blast.values()))
    if report.failures_by_blast:
        try:
            report.paused_blasts.extend(await note_failures(settings, report.failures_by_blast))
        except (RedisError, OSError) as exc:
            log.warning("could not publish webhook failures for the auto-pause: %s", first_line(exc))
    for value in template_events:
        try:
            report.paused_blasts.extend(await apply_template_event(value, settings=settings))
        except Exception as exc:
            log.warning(
                "template event not applied (%s); the next template sync will catch up", first_line(exc)
            )
    for value in quality_events:
        try:
            await apply_quality_event(value)
        except Exception as exc:
            log.warning("template quality event not applied: %s", first_line(exc))
    for value in category_events:
        try:
            await template_sync.apply_category_event(value)
        except Exception as exc:
            log.warning(
                "template category event not applied (%s); the next sync will catch up", first_line(exc)
            )
    await dispatch_field_events(settings, field_events)
