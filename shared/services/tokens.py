"""Provides the HTTP API's Bearer tokens: create (shown once), list, revoke, and authenticate a presented token.

A token is `blast_` and 32 random bytes (url-safe base64); only its sha256 is stored. A fast hash is enough for
secrets of that entropy (nothing to brute-force, unlike a password), and it lets a presented token be found by
its hash; the stored and computed hashes are then compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from shared.actors import current_actor
from shared.clock import utcnow
from shared.errors import NotFound, ValidationFailed
from shared.models import ApiToken
from shared.services import transitions

log = logging.getLogger(__name__)

TOKEN_PREFIX = "blast_"  # noqa: S105  # the fixed, public start of every token, not a secret
#: Characters of the token kept in clear (the fixed prefix and a few random ones) to tell tokens apart.
SHOWN_PREFIX_LEN = 10
#: last_used_at is written at most this often per token (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOKEN = re.compile(r"^blast_[A-Za-z0-9_-]{43}$")


class Role(str, Enum):
    """What a token may do: an operator reads and changes, a viewer only reads."""

    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def actor(self) -> str:
        """How the audit log names what this token did."""
        return f"api:{self.name}"


@dataclass(frozen=True, slots=True)
class CreatedToken:
    info: TokenInfo
    #: The token itself: shown once, never stored.
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(t: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=t.id,
        name=t.name,
        role=Role(t.role),
        prefix=t.prefix,
        created_at=t.created_at,
        created_by=t.created_by,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
    )


async def create_token(*, name: str, role: Role | str, actor: str | None = None) -> CreatedToken:
    """Create a token; the result carries the token itself, which is never shown again.

    Raises:
        ValidationFailed: a bad name or role, or a token of that name exists (revoked ones too).
    """
    actor = actor or current_actor()
    name = name.strip()
    if not _NAME.match(name):
        raise ValidationFailed(
            f"token name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-' (e.g. crm)"
        )
    try:
        role = Role(str(getattr(role, "value", role)).lower())
    except ValueError:
        raise ValidationFailed(f"unknown role {role!r}: use operator or viewer") from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        async with in_transaction() as tx:
            row = await ApiToken.create(
                name=name,
                role=role.value,
                token_hash=hash_token(token),
                prefix=token[:SHOWN_PREFIX_LEN],
                created_at=utcnow(),
                created_by=actor,
                using_db=tx,
            )
            await transitions.audit(
                actor=actor,
                action="token-create",
                entity="api_token",
                entity_id=name,
                conn=tx,
                detail={"role": role.value},
            )
    except IntegrityError:
        raise ValidationFailed(
            f"a token named {name} exists already; revoke it or choose another name"
        ) from None
    log.info("API token %s (%s) created by %s", name, role.value, actor)
    return CreatedToken(info=_info(row), token=token)


async def list_tokens(*, include_revoked: bool = True) -> list[TokenInfo]:
    """Every token by name (never the token itself)."""
    query = ApiToken.all() if include_revoked else ApiToken.filter(revoked_at__isnull=True)
    return [_info(t) for t in await query.order_by("name")]


async def revoke_token(name: str, *, actor: str | None = None) -> TokenInfo:
    """Revoke a token at once: the API refuses it from its next request.

    Raises:
        NotFound: no token of that name.
        ValidationFailed: it was revoked already.
    """
    actor = actor or current_actor()
    row = await ApiToken.get_or_none(name=name)
    if row is None:
        raise NotFound(f"token {name} does not exist (see: blast-console token list)")
    async with in_transaction() as tx:
        moved = (
            await ApiToken.filter(id=row.id, revoked_at__isnull=True).using_db(tx).update(revoked_at=utcnow())
        )
        if not moved:
            raise ValidationFailed(f"token {name} is revoked already")
        await transitions.audit(
            actor=actor, action="token-revoke", entity="api_token", entity_id=name, conn=tx
        )
    log.info("API token %s revoked by %s", name, actor)
    return _info(await ApiToken.get(id=row.id))


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The token presented, if valid; else why not (for the log, never the token)."""

    token: TokenInfo | None
    reason: str = ""


async def authenticate(presented: str) -> AuthResult:
    """Find the live token matching `presented`.

    The lookup is by the sha256 of the presented token, so a timing difference can only reveal a hash prefix
    of an attacker's own guess; the hashes are compared once more with hmac.compare_digest.
    """
    if not _TOKEN.match(presented):
        return AuthResult(None, "malformed token")
    digest = hash_token(presented)
    row = await ApiToken.get_or_none(token_hash=digest)
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return AuthResult(None, "unknown token")
    if row.revoked_at is not None:
        return AuthResult(None, f"revoked token {row.name}")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await ApiToken.filter(id=row.id).update(last_used_at=now)
        row.last_used_at = now
    return AuthResult(_info(row))
