"""Provides the mirror of Meta's templates: the full sync (one per interval across daemons, by a Redis slot lock)
and the template webhooks (status and category updates). Drafts and their submission live in
shared.services.template_drafts; pausing the blasts of unusable templates in shared.services.template_pausing.

Sync and webhooks write what Meta says (ARCHITECTURE.md §3). Every write is conditional on the row not
having been observed later than this observation (`last_synced_at`), so a sync whose list was fetched before
a webhook arrived never undoes that webhook. Blasts that are SCHEDULED or PROCESSING with a template that is
no longer APPROVED are paused with the reason (else the sender fails every recipient with 132015/132016).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from redis.exceptions import RedisError
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from shared.actors import current_actor, daemon_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import BlastError
from shared.events import redis_client
from shared.models import Template
from shared.services.template_pausing import PausedBlast, pause_blasts_of_unusable_templates
from shared.services.templates import label, stored_parameters
from shared.status import TemplateStatus
from shared.text import first_line
from shared.whatsapp.base import TemplateInfo, WhatsAppProvider

log = logging.getLogger(__name__)
T = TemplateStatus


# ------------------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """One template whose status moved (old is None for a template new to this database)."""

    name: str
    language: str
    old: TemplateStatus | None
    new: TemplateStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did.

    Attributes:
        created: templates that appeared locally (created in Meta's tools, or submitted elsewhere).
        changed: templates whose status moved.
        unchanged: templates whose status stayed (their definition may still have been refreshed).
        updated: templates whose definition (category, components, format) changed without a status change.
        failed: why the sync failed (nothing was changed then), or None.
        paused_blasts: blasts paused because their template is no longer APPROVED.
        ignored: templates Meta listed with a status this release does not know (logged, left alone).
        missing: templates with a Meta id that Meta did not list at all (logged, left alone).
        duration_ms: how long the sync took.
    """

    created: list[TemplateChange] = field(default_factory=list)
    changed: list[TemplateChange] = field(default_factory=list)
    unchanged: int = 0
    updated: list[str] = field(default_factory=list)
    failed: str | None = None
    paused_blasts: list[PausedBlast] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def listed(self) -> int:
        """Templates Meta listed (that this release understood)."""
        return len(self.created) + len(self.changed) + self.unchanged


@dataclass(slots=True)
class _Tally:
    """What a sync found so far (turned into the frozen SyncReport at the end)."""

    created: list[TemplateChange] = field(default_factory=list)
    changed: list[TemplateChange] = field(default_factory=list)
    unchanged: int = 0
    updated: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TemplateEventResult:
    """What a `message_template_status_update` webhook did (old == new when it changed nothing)."""

    name: str
    language: str
    old: TemplateStatus
    new: TemplateStatus
    reason: str | None
    paused_blasts: list[PausedBlast] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------


def _meta_reason(value: str | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text == "" or text.upper() == "NONE" else text


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, BlastError):
        return exc.message
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "the Graph API did not answer in time (timeout)"
    return f"could not reach the Graph API ({type(exc).__name__}: {first_line(exc, empty='no details')})"


# ------------------------------------------------------------------------------------------------------------
# sync
# ------------------------------------------------------------------------------------------------------------


def _observed(at: datetime) -> Q:
    """Rows not observed after `at` (so an older observation never overwrites a newer one)."""
    return Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=at)


async def _write_listed(
    info: TemplateInfo,
    status: TemplateStatus,
    by_meta: dict[str, Template],
    by_key: dict[tuple[str, str], Template],
    observed_at: datetime,
    report: _Tally,
) -> int | None:
    """Write one listed template; returns its row id when its status changed (or it is new)."""
    reason = _meta_reason(info.rejected_reason) if status == T.REJECTED else None
    components = [dict(c) for c in info.components] if isinstance(info.components, Sequence) else []
    parameter_format = (info.parameter_format or "POSITIONAL").upper()
    names, count = stored_parameters(components, parameter_format)
    values: dict[str, Any] = {
        "meta_id": info.id,
        "category": (info.category or "UTILITY").upper()[:32],
        "status": status,
        "parameter_format": parameter_format[:16],
        "components": components,
        "parameter_names": names,
        "parameter_count": count,
        "quality_score": (info.quality_score or None) and str(info.quality_score)[:16],
        "last_synced_at": observed_at,
    }
    row = by_meta.get(info.id) or by_key.get((info.name, info.language))
    if row is None:
        try:
            created = await Template.create(
                name=info.name, language=info.language, rejection_reason=reason, **values
            )
        except IntegrityError:
            # Another sync or a submission inserted it meanwhile: update that row instead.
            row = await Template.get_or_none(Q(meta_id=info.id) | Q(name=info.name, language=info.language))
            if row is None:
                raise
        else:
            report.created.append(TemplateChange(info.name, info.language, None, status, reason))
            log.info("template %s created from Meta: %s", label(info.name, info.language), status.value)
            return created.id
    old = TemplateStatus(row.status)
    values.update(category_change(row.category, values["category"], observed_at))
    if old != status:
        values["rejection_reason"] = reason
    elif reason is not None:
        values["rejection_reason"] = reason  # else keep the richer reason a webhook may have stored
    moved = await Template.filter(_observed(observed_at), id=row.id).update(**values, updated_at=utcnow())
    if not moved:
        log.info("template %s: a newer status arrived meanwhile; sync result not applied", row)
        report.unchanged += 1
        return None
    if old != status:
        report.changed.append(TemplateChange(row.name, row.language, old, status, reason))
        log.info("template %s %s -> %s%s", row, old.value, status.value, f" ({reason})" if reason else "")
        return row.id
    if (row.category, row.components, row.parameter_format) != (
        values["category"],
        values["components"],
        values["parameter_format"],
    ):
        report.updated.append(label(row.name, row.language))
    report.unchanged += 1
    return None


async def sync_templates(
    settings: Settings, provider: WhatsAppProvider, *, actor: str | None = None
) -> SyncReport:
    """Pull every template of the business account (all pages) and write what Meta says.

    Templates created in Meta's own tools appear locally; blasts whose template is no longer APPROVED are
    paused. When Meta cannot be asked, nothing is changed.

    Args:
        settings: the deployment.
        provider: the WhatsApp provider (started).
        actor: who syncs, for the audit log of paused blasts (default: the OS user).

    Returns:
        The report; `failed` holds the reason when Meta could not be asked (nothing was changed then).
    """
    actor = actor or current_actor()
    started = time.monotonic()
    observed_at = utcnow()
    try:
        listed = await provider.list_templates()
    except (BlastError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = _failure_text(exc)
        log.warning("template sync failed, nothing changed: %s", reason)
        return SyncReport(failed=reason, duration_ms=int((time.monotonic() - started) * 1000))
    report = _Tally()
    local = await Template.all()
    by_meta = {t.meta_id: t for t in local if t.meta_id}
    by_key = {(t.name, t.language): t for t in local}
    seen: set[int] = set()
    for info in listed:
        try:
            status = TemplateStatus.from_meta(info.status)
        except ValueError:
            log.warning(
                "template %s has status %r, unknown to blast; left alone",
                label(info.name, info.language),
                info.status,
            )
            report.ignored.append(label(info.name, info.language))
            known = by_meta.get(info.id) or by_key.get((info.name, info.language))
            if known is not None:
                seen.add(known.id)
            continue
        row_id = await _write_listed(info, status, by_meta, by_key, observed_at, report)
        known = by_meta.get(info.id) or by_key.get((info.name, info.language))
        if known is not None:
            seen.add(known.id)
        if row_id is not None:
            seen.add(row_id)
    # Meta lists deleted templates as DELETED for a while; a template absent from the complete list is not a
    # statement about it (another WABA, a test row, a sandbox store): reported and left alone.
    for row in local:
        if row.id not in seen and row.meta_id and TemplateStatus(row.status) != T.DELETED:
            report.missing.append(label(row.name, row.language))
    if report.missing:
        log.warning(
            "template sync: %s template(s) known here are not listed by Meta, left unchanged: %s",
            len(report.missing),
            ", ".join(report.missing[:20]),
        )
    paused = await pause_blasts_of_unusable_templates(settings=settings, actor=actor)
    result = SyncReport(
        created=report.created,
        changed=report.changed,
        unchanged=report.unchanged,
        updated=report.updated,
        paused_blasts=paused,
        ignored=report.ignored,
        missing=report.missing,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    log.info(
        "template sync: %s listed, %s new, %s changed, %s unchanged, %s blasts paused (%s ms)",
        len(listed),
        len(result.created),
        len(result.changed),
        result.unchanged,
        len(paused),
        result.duration_ms,
    )
    return result


def slot_of(at: float, interval_s: float) -> int:
    """The time slot of `at` (seconds since the epoch) for a sync every `interval_s` seconds."""
    return int(at // interval_s)


async def claim_slot(settings: Settings, slot: int) -> bool:
    """Take the per-slot lock, so that one sync runs per interval however many daemons run.

    Returns:
        True if this process should sync in `slot`. Also True (with a warning) when Redis cannot be reached: a
        duplicate sync is harmless, a missed one is not.
    """
    interval = settings.TEMPLATE_SYNC_INTERVAL
    ttl = max(2, math.ceil(interval * 2))
    try:
        won = await redis_client(settings).set(
            settings.key("template_sync", slot), str(time.time()), nx=True, ex=ttl
        )
    except (RedisError, OSError) as exc:
        log.warning("template sync: Redis unreachable (%s); syncing without the per-interval lock", exc)
        return True
    return bool(won)


async def sync_templates_in_slot(
    settings: Settings, provider: WhatsAppProvider, *, slot: int | None = None, actor: str | None = None
) -> SyncReport | None:
    """Sync once for this interval: None when another daemon already holds this slot's lock.

    Args:
        settings: the deployment (TEMPLATE_SYNC_INTERVAL sets the slot length).
        provider: the WhatsApp provider (started).
        slot: the slot to claim (default: the current one).
        actor: who syncs (default: daemon@host).

    Returns:
        The report, or None when this slot's sync belongs to another process.
    """
    if slot is None:
        slot = slot_of(time.time(), settings.TEMPLATE_SYNC_INTERVAL)
    if not await claim_slot(settings, slot):
        log.debug("template sync of slot %s runs elsewhere", slot)
        return None
    return await sync_templates(settings, provider, actor=actor or daemon_actor())


# ------------------------------------------------------------------------------------------------------------
# webhook
# ------------------------------------------------------------------------------------------------------------


def _event_reason(value: Mapping[str, Any]) -> str | None:
    parts: list[str] = []
    for text in (
        _meta_reason(value.get("reason")),
        *(
            _meta_reason(info.get(k)) if isinstance(info, Mapping) else None
            for info in (value.get("rejection_info"), value.get("other_info"))
            for k in ("reason", "title", "description", "recommendation")
        ),
    ):
        if text and text not in parts:
            parts.append(text)
    disable = value.get("disable_info")
    if isinstance(disable, Mapping) and disable.get("disable_date") is not None:
        parts.append(f"disabled on {disable.get('disable_date')}")
    return "; ".join(parts)[:2000] or None


def category_change(old: str | None, new: str, at: datetime) -> dict[str, Any]:
    """Column values writing `new` as a template's category: a change Meta made to a known category is kept
    (previous_category, category_changed_at), so estimates and the template list can show it."""
    new = new.upper()[:32]
    if old and old.upper() != new:
        return {"category": new, "previous_category": old.upper()[:32], "category_changed_at": at}
    return {"category": new}


async def apply_category_event(value: Mapping[str, Any]) -> bool:
    """Apply one `template_category_update` webhook value (new_category, previous_category, the template's id or
    name and language). Returns whether a known template's category changed; malformed values are ignored."""
    new = value.get("new_category")
    meta_id = value.get("message_template_id")
    name = str(value.get("message_template_name") or "")
    language = str(value.get("message_template_language") or "")
    if not isinstance(new, str) or not new.strip():
        return False
    row = await Template.get_or_none(meta_id=str(meta_id)) if meta_id is not None else None
    if row is None and name and language:
        row = await Template.get_or_none(name=name, language=language)
    if row is None:
        log.info(
            "template category update for %s (id %s): not known here yet", label(name, language), meta_id
        )
        return False
    values = category_change(row.category, new.strip(), utcnow())
    if "previous_category" not in values:
        return False
    await Template.filter(id=row.id, category=row.category).update(**values, updated_at=utcnow())
    log.info("template %s category %s -> %s by Meta", row, row.category, values["category"])
    return True


async def apply_template_event(
    value: Mapping[str, Any], *, settings: Settings, actor: str | None = None
) -> TemplateEventResult | None:
    """Apply one `message_template_status_update` webhook value at once.

    Args:
        value: the change's `value` (event, message_template_id, message_template_name, …_language, reason …).
        settings: the deployment.
        actor: who applies it, for the audit log of paused blasts (default: daemon@host).

    Returns:
        What changed, or None when the event is not a status this release knows (LOCKED, UNLOCKED …)
        or names a template not yet in this database (the next sync brings it). Malformed values are
        ignored, never raised.
    """
    event = str(value.get("event") or "")
    meta_id = value.get("message_template_id")
    meta_id_text = str(meta_id) if meta_id is not None and not isinstance(meta_id, bool) else None
    name = str(value.get("message_template_name") or "")
    language = str(value.get("message_template_language") or "")
    try:
        status = TemplateStatus.from_meta(event)
    except ValueError:
        log.info("template webhook %r for %s ignored (not a status)", event, label(name, language))
        return None
    row = None
    if meta_id_text:
        row = await Template.get_or_none(meta_id=meta_id_text)
    if row is None and name and language:
        row = await Template.get_or_none(name=name, language=language)
    if row is None:
        log.info(
            "template webhook %s for %s (id %s): not known here yet; the next sync brings it",
            status.value,
            label(name, language),
            meta_id_text,
        )
        return None
    old = TemplateStatus(row.status)
    reason = _event_reason(value) if status != T.APPROVED else None
    values: dict[str, Any] = {"status": status, "last_synced_at": utcnow(), "updated_at": utcnow()}
    if status != old or reason is not None:
        values["rejection_reason"] = reason
    if meta_id_text and not row.meta_id:
        values["meta_id"] = meta_id_text
    category = value.get("message_template_category")
    if isinstance(category, str) and category:
        values.update(category_change(row.category, category, utcnow()))
    await Template.filter(id=row.id).update(**values)
    if old != status:
        log.info(
            "template %s %s -> %s by webhook%s",
            row,
            old.value,
            status.value,
            f" ({reason})" if reason else "",
        )
    paused: list[PausedBlast] = []
    if status != T.APPROVED:
        paused = await pause_blasts_of_unusable_templates(
            settings=settings, actor=actor or daemon_actor(), template_ids=[row.id]
        )
    return TemplateEventResult(row.name, row.language, old, status, reason, paused)
