"""Provides the sender numbers: add, list, show, remove; the default sender of WHATSAPP_PHONE_NUMBER_ID; the
choice of a blast's sender or pool; tokens resolved by name; each number's rate (the operator's cap and Meta's
throughput level) and its standing as read from Meta or told by the `phone_number_quality_update` webhook.

A sender's token is never stored: the row names the setting (`token_env`) that holds it, read from the process
environment or the env files (the secrets file is the daemon's) when the number is used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr

from shared.clock import utcnow
from shared.config import Settings, env_files
from shared.errors import NotFound, ValidationFailed
from shared.models import Blast, Sender
from shared.services import transitions
from shared.status import BlastStatus

log = logging.getLogger(__name__)

#: Meta's throughput levels, in messages per second per number.
LEVEL_RATES: dict[str, float] = {"STANDARD": 80.0, "HIGH": 1000.0}
#: A number whose level is not known yet paces at Meta's default.
DEFAULT_LEVEL_RATE = 80.0
#: The setting that holds the default sender's token.
DEFAULT_TOKEN_ENV = "WHATSAPP_ACCESS_TOKEN"  # noqa: S105 (a setting name, not a secret)
#: How long a number under upgrade (131057) holds its sending.
UPGRADE_HOLD_S = 60.0
#: The `field` of Meta's webhook about a number's quality and throughput.
NUMBER_UPDATE_FIELD = "phone_number_quality_update"

_ID = re.compile(r"^[0-9]{1,32}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_UNFINISHED = (BlastStatus.DRAFT, BlastStatus.SCHEDULED, BlastStatus.PROCESSING, BlastStatus.PAUSED)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """One sender number as the console and the daemon see it (never its token)."""

    phone_number_id: str
    waba_id: str
    token_env: str
    name: str
    display_phone: str
    rate_cap: float | None
    throughput_level: str | None
    quality_rating: str | None
    messaging_limit_tier: str | None
    is_default: bool
    #: messages per second it sends at: min(operator cap, Meta's level)
    rate: float
    has_token: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "token_env": self.token_env,
            "name": self.name,
            "display_phone": self.display_phone,
            "rate_cap": self.rate_cap,
            "throughput_level": self.throughput_level,
            "quality_rating": self.quality_rating,
            "messaging_limit_tier": self.messaging_limit_tier,
            "is_default": self.is_default,
            "rate": self.rate,
            "has_token": self.has_token,
        }


def _env_file_settings() -> dict[str, str]:
    """The non-empty settings of the env files this user may read, a later file winning (blocking: file reads)."""
    found: dict[str, str] = {}
    for path in env_files():
        found.update((k, v) for k, v in dotenv_values(path).items() if v)
    return found


async def resolve_tokens(settings: Settings, names: Iterable[str]) -> dict[str, SecretStr | None]:
    """The token held by each setting in `names`: the process environment, else the env files this user may read
    (read afresh each call, so a changed secrets file counts from the next call; read in a thread, never on the
    event loop, and only when a name is not in the environment). None: the setting is empty or absent.

    The default sender's WHATSAPP_ACCESS_TOKEN is read through the settings (so tests and reloads see theirs).
    """
    wanted = list(dict.fromkeys(names))
    tokens: dict[str, SecretStr | None] = {}
    for name in wanted:
        if name == DEFAULT_TOKEN_ENV and settings.WHATSAPP_ACCESS_TOKEN is not None:
            tokens[name] = settings.WHATSAPP_ACCESS_TOKEN
        elif os.environ.get(name):
            tokens[name] = SecretStr(os.environ[name])
    missing = [name for name in wanted if name not in tokens]
    if missing:
        files = await asyncio.to_thread(_env_file_settings)
        for name in missing:
            value = files.get(name)
            tokens[name] = SecretStr(value) if value else None
    return tokens


def rate_of(settings: Settings, sender: Sender) -> float:
    """Messages per second of a sender: the default sender keeps BLAST_RATE_LIMIT; another number paces at
    min(its operator cap, its Meta level: 80 or 1,000 msg/s)."""
    if sender.is_default:
        return settings.BLAST_RATE_LIMIT
    level = LEVEL_RATES.get((sender.throughput_level or "").upper(), DEFAULT_LEVEL_RATE)
    return min(level, sender.rate_cap) if sender.rate_cap else level


def _info(settings: Settings, s: Sender, tokens: Mapping[str, SecretStr | None]) -> SenderInfo:
    return SenderInfo(
        phone_number_id=s.phone_number_id,
        waba_id=s.waba_id,
        token_env=s.token_env,
        name=s.name,
        display_phone=s.display_phone,
        rate_cap=s.rate_cap,
        throughput_level=s.throughput_level,
        quality_rating=s.quality_rating,
        messaging_limit_tier=s.messaging_limit_tier,
        is_default=s.is_default,
        rate=rate_of(settings, s),
        has_token=settings.is_sandbox or tokens.get(s.token_env) is not None,
    )


async def ensure_default(settings: Settings) -> None:
    """Create (or follow) the default sender from WHATSAPP_PHONE_NUMBER_ID / WHATSAPP_BUSINESS_ACCOUNT_ID, so
    an existing install needs no step. Nothing happens when the id is not set."""
    pnid = (settings.WHATSAPP_PHONE_NUMBER_ID or "").strip()
    if not pnid and settings.is_sandbox:
        from shared.whatsapp.sandbox import SANDBOX_PHONE_NUMBER_ID  # deferred: the sandbox pulls in the fake

        pnid = SANDBOX_PHONE_NUMBER_ID
    if not pnid:
        return
    current = await Sender.filter(is_default=True).first()
    if current is not None and current.phone_number_id == pnid:
        return
    try:
        await _make_default(settings, pnid, current)
    except Exception as exc:  # a read-only console (a read-only database role): the daemon records it
        log.debug("default sender %s not recorded here (%s)", pnid, exc)


async def _make_default(settings: Settings, pnid: str, current: Sender | None) -> None:
    if current is not None:  # the setting changed: the old number becomes an ordinary sender
        await Sender.filter(id=current.id).update(is_default=False)
    existing = await Sender.get_or_none(phone_number_id=pnid)
    if existing is not None:
        await Sender.filter(id=existing.id).update(is_default=True)
        return
    waba = settings.WHATSAPP_BUSINESS_ACCOUNT_ID or ""
    if not waba and settings.is_sandbox:
        from shared.whatsapp.sandbox import SANDBOX_WABA_ID

        waba = SANDBOX_WABA_ID
    await Sender.create(
        phone_number_id=pnid,
        waba_id=waba,
        token_env=DEFAULT_TOKEN_ENV,
        name="default",
        is_default=True,
    )
    log.info("default sender %s created from WHATSAPP_PHONE_NUMBER_ID", pnid)


async def list_senders(settings: Settings) -> list[SenderInfo]:
    """Every sender number, the default first."""
    await ensure_default(settings)
    rows = await Sender.all().order_by("-is_default", "id")
    tokens = await _tokens_of(settings, rows)
    return [_info(settings, s, tokens) for s in rows]


async def _tokens_of(settings: Settings, rows: Sequence[Sender]) -> dict[str, SecretStr | None]:
    """The tokens of these senders' settings (none read in the sandbox, whose simulated numbers need none)."""
    return {} if settings.is_sandbox else await resolve_tokens(settings, {s.token_env for s in rows})


async def show_sender(settings: Settings, phone_number_id: str) -> SenderInfo:
    """One sender number.

    Raises:
        NotFound: no sender has this phone number id.
    """
    await ensure_default(settings)
    row = await _get(phone_number_id)
    return _info(settings, row, await _tokens_of(settings, [row]))


async def _get(phone_number_id: str) -> Sender:
    row = await Sender.get_or_none(phone_number_id=phone_number_id.strip())
    if row is None:
        raise NotFound(
            f"no sender with phone number id {phone_number_id}: see `blast-console sender list`, "
            "or add it with `blast-console sender add`"
        )
    return row


async def add_sender(
    settings: Settings,
    *,
    phone_number_id: str,
    waba_id: str,
    token_env: str,
    name: str = "",
    rate: float | None = None,
    display_phone: str = "",
    actor: str,
) -> SenderInfo:
    """Add a sender number; its token stays in the setting `token_env`.

    Raises:
        ValidationFailed: a bad id, setting name or rate; a setting that holds no token; a number already added.
    """
    pnid, waba, env = phone_number_id.strip(), waba_id.strip(), token_env.strip()
    if not _ID.match(pnid):
        raise ValidationFailed(
            f"--phone-number-id {phone_number_id!r}: Meta's phone number id is digits only"
        )
    if not _ID.match(waba):
        raise ValidationFailed(f"--waba-id {waba_id!r}: the WhatsApp Business Account id is digits only")
    if not _ENV_NAME.match(env):
        raise ValidationFailed(f"--token-env {token_env!r}: the name of a setting (letters, digits, _)")
    if rate is not None and not rate > 0:
        raise ValidationFailed(f"--rate {rate}: messages per second must be more than 0")
    tokens = {} if settings.is_sandbox else await resolve_tokens(settings, [env])
    if not settings.is_sandbox and tokens[env] is None:
        raise ValidationFailed(
            f"--token-env {env}: no such setting in the environment or the env files; "
            f"put this number's token there (e.g. {env}=… in /etc/blast/secrets.env) first"
        )
    await ensure_default(settings)
    if await Sender.exists(phone_number_id=pnid):
        raise ValidationFailed(f"sender {pnid} already exists: see `blast-console sender show {pnid}`")
    row = await Sender.create(
        phone_number_id=pnid,
        waba_id=waba,
        token_env=env,
        name=name.strip()[:100],
        display_phone=display_phone.strip()[:32],
        rate_cap=rate,
    )
    await transitions.audit(
        actor=actor,
        action="sender_add",
        entity="sender",
        entity_id=row.id,
        detail={"phone_number_id": pnid, "waba_id": waba, "token_env": env, "rate": rate},
    )
    log.info("sender %s added by %s (WABA %s, token in %s)", pnid, actor, waba, env)
    return _info(settings, row, tokens)


async def remove_sender(settings: Settings, phone_number_id: str, *, actor: str) -> None:
    """Remove a sender number that no unfinished blast uses.

    Raises:
        NotFound: no such sender.
        ValidationFailed: the default sender, or a number an unfinished blast sends from.
    """
    row = await _get(phone_number_id)
    if row.is_default:
        raise ValidationFailed(
            f"sender {row.phone_number_id} is the default (WHATSAPP_PHONE_NUMBER_ID): change that setting instead"
        )
    for blast_id, pool in await Blast.filter(status__in=_UNFINISHED, senders__not_isnull=True).values_list(
        "id", "senders"
    ):
        if row.phone_number_id in (pool or []):
            raise ValidationFailed(
                f"sender {row.phone_number_id} is used by blast {blast_id}, which is not finished: "
                "cancel it or let it finish first"
            )
    await Sender.filter(id=row.id).delete()
    await transitions.audit(
        actor=actor,
        action="sender_remove",
        entity="sender",
        entity_id=row.id,
        detail={"phone_number_id": row.phone_number_id},
    )
    log.info("sender %s removed by %s", row.phone_number_id, actor)


def parse_pool(sender: str | None, senders: str | Sequence[str] | None) -> list[str] | None:
    """The phone number ids of `--sender ID` or `--senders ID,ID` (None: neither given).

    Raises:
        ValidationFailed: both given, or an empty list.
    """
    if sender and senders:
        raise ValidationFailed("give --sender or --senders, not both")
    if sender:
        return [sender.strip()]
    if senders is None:
        return None
    items = senders.split(",") if isinstance(senders, str) else list(senders)
    ids = list(dict.fromkeys(s.strip() for s in items if s.strip()))
    if not ids:
        raise ValidationFailed("--senders: give at least one phone number id (ID,ID …)")
    return ids


async def resolve_pool(settings: Settings, ids: Sequence[str] | None) -> list[str] | None:
    """Check a blast's senders and return what the blast stores: None for the default sender alone.

    Raises:
        ValidationFailed: an unknown sender, a pool mixing WABAs, or a sender whose token setting is empty.
    """
    if not ids:
        return None
    await ensure_default(settings)
    rows = {s.phone_number_id: s for s in await Sender.filter(phone_number_id__in=list(ids))}
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise ValidationFailed(
            f"unknown sender {unknown[0]}: add it with `blast-console sender add` (see `blast-console sender list`)"
        )
    wabas = sorted({rows[i].waba_id for i in ids})
    if len(wabas) > 1:
        by = ", ".join(f"{i} (WABA {rows[i].waba_id})" for i in ids)
        raise ValidationFailed(f"a pool may only mix numbers of one WABA (templates are per WABA): {by}")
    tokens = await _tokens_of(settings, list(rows.values()))
    if not settings.is_sandbox:
        for i in ids:
            if tokens[rows[i].token_env] is None:
                raise ValidationFailed(
                    f"sender {i} has no token: its setting {rows[i].token_env} is not set "
                    "(in the environment or the secrets file)"
                )
    if len(ids) == 1 and rows[ids[0]].is_default:
        return None
    return list(ids)


async def sender_for_send(settings: Settings, phone_number_id: str) -> tuple[SenderInfo, SecretStr | None]:
    """What the daemon needs to send from a number: its row and its token (None in the sandbox or unset).

    Raises:
        NotFound: no such sender.
    """
    row = await _get(phone_number_id)
    tokens = await resolve_tokens(settings, [row.token_env])
    return _info(settings, row, tokens), tokens[row.token_env]


async def record_standing(
    phone_number_id: str,
    *,
    throughput_level: str | None = None,
    quality_rating: str | None = None,
    messaging_limit_tier: str | None = None,
    display_phone: str | None = None,
) -> bool:
    """Store what Meta said about a number (fields given as None are kept). Returns False for an unknown number."""
    values: dict[str, Any] = {"checked_at": utcnow()}
    if throughput_level:
        values["throughput_level"] = throughput_level.upper()
    if quality_rating:
        values["quality_rating"] = quality_rating.upper()
    if messaging_limit_tier:
        values["messaging_limit_tier"] = messaging_limit_tier
    if display_phone:
        values["display_phone"] = display_phone[:32]
    n = await Sender.filter(phone_number_id=phone_number_id).update(**values)
    if n:
        log.info(
            "sender %s: throughput %s, quality %s, messaging limit %s",
            phone_number_id,
            throughput_level or "-",
            quality_rating or "-",
            messaging_limit_tier or "-",
        )
    return bool(n)


async def apply_number_update(value: Mapping[str, Any]) -> bool:
    """Apply the `value` of a `phone_number_quality_update` webhook change (THROUGHPUT_UPGRADE, quality changes,
    messaging-limit changes) to the sender it names; False when it names no known sender.

    Meta's value names the number by `display_phone_number` (and, in newer versions, `phone_number_id`);
    `event` is e.g. THROUGHPUT_UPGRADE, FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE; `current_limit` or
    `messaging_limit_tier` the portfolio's tier; `max_daily_conversations_per_business` its number.
    """
    pnid = str(value.get("phone_number_id") or "")
    row: Sender | None = None
    if pnid:
        row = await Sender.get_or_none(phone_number_id=pnid)
    if row is None:
        display = re.sub(r"\D", "", str(value.get("display_phone_number") or ""))
        if display:
            row = await Sender.filter(display_phone__in=[display, f"+{display}"]).first()
    if row is None:
        log.info("phone number update for an unknown sender (%s): ignored", pnid or "no id")
        return False
    event = str(value.get("event") or "").upper()
    level = str(value.get("throughput_level") or "") or ("HIGH" if event == "THROUGHPUT_UPGRADE" else None)
    quality = value.get("quality_rating") or {"FLAGGED": "RED", "UNFLAGGED": "GREEN"}.get(event)
    tier = value.get("current_limit") or value.get("messaging_limit_tier")
    await record_standing(
        row.phone_number_id,
        throughput_level=level or None,
        quality_rating=str(quality) if quality else None,
        messaging_limit_tier=str(tier) if tier else None,
    )
    return True


async def count_senders() -> int:
    """How many sender numbers there are (the default included once it is recorded)."""
    return await Sender.all().count()


async def pool_of(blast_id: int) -> list[str] | None:
    """The phone number ids a blast sends from (None: the default sender)."""
    rows = await Blast.filter(id=blast_id).values_list("senders", flat=True)
    pool = rows[0] if rows else None
    return [str(p) for p in pool] if isinstance(pool, list) and pool else None


def messaging_limit_check(
    settings: Settings, *, strict: bool, warnings: list[str], strict_name: str = "--strict"
) -> Callable[[int, list[str] | None], Awaitable[None]]:
    """The `check_accepted` of `blasts.create_blast` for the portfolio's messaging limit: the warning is added to
    `warnings`, or with `strict` it refuses the blast (ValidationFailed: nothing is created)."""

    async def check(accepted: int, pool: list[str] | None) -> None:
        warning = await messaging_limit_warning(settings, new_recipients=accepted, pool=pool)
        if warning is not None and strict:
            raise ValidationFailed(f"{warning} ({strict_name}: nothing created)")
        if warning is not None:
            warnings.append(warning)

    return check


async def messaging_limit_warning(
    settings: Settings, *, new_recipients: int, pool: Sequence[str] | None, ask_meta: bool = False
) -> str | None:
    """The warning when a blast of `new_recipients` would take the portfolio past its messaging limit (unique
    users per moving 24 h, shared by all its numbers since October 2025), naming the numbers; None when it fits
    or the limit is not known. The limit is Meta's tier as the daemon last read it (or BLAST_MESSAGING_LIMIT).
    """
    from shared.services import messaging  # deferred: messaging imports the blasts service, which imports us

    tier = await messaging.messaging_limit(settings, ask_meta=ask_meta)
    if tier.limit is None:
        rows = await Sender.filter(messaging_limit_tier__not_isnull=True).values_list(
            "messaging_limit_tier", flat=True
        )
        from shared.whatsapp.cloud import daily_limit_of

        limits = [daily_limit_of(str(t)) for t in rows]
        known = [x for x in limits if x is not None]
        if not known or len(known) < len(limits):
            return None
        tier = messaging.MessagingLimit(min(known), f"Meta tier {rows[0]}")
    limit = tier.limit
    if limit is None:
        return None
    used = await messaging.unique_recipients_since(utcnow() - timedelta(hours=24))
    total = used + new_recipients
    if total <= limit:
        return None
    numbers = list(pool or [settings.WHATSAPP_PHONE_NUMBER_ID or "the default number"])
    return (
        f"this blast would reach {total:,} new users in 24 h; the portfolio's limit is {limit:,} "
        f"({tier.source}; shared by its numbers, this blast sends from {', '.join(numbers)}): Meta will refuse "
        "the excess; split the blast or send later"
    )
