"""Provides the daemon's SIGHUP reload: re-read the env files and apply new Meta credentials in place.

The access token, the app secret (webhook signatures) and the verify token are swapped without a restart: the
webhook receiver reads them from the daemon's one Settings object on every request, and the cloud client takes
its token from `set_access_token` for every request that starts afterwards. In-flight requests and chunks are
not touched. Anything else that changed in the files (phone number id, WABA id, database, Redis, rate …) is
named in a warning: those need `systemctl restart`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pydantic import SecretStr

from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.whatsapp.base import WhatsAppProvider

log = logging.getLogger(__name__)

#: Settings a SIGHUP applies to the running daemon.
RELOADABLE: tuple[str, ...] = ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN")


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a reload did.

    Attributes:
        applied: settings now in use with a new value (names only, never values).
        need_restart: settings whose new value only a restart applies.
        error: why nothing was applied (the files did not validate), else None.
    """

    applied: list[str] = field(default_factory=list)
    need_restart: list[str] = field(default_factory=list)
    error: str | None = None


def _secret(value: object) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else None


def reload_credentials(settings: Settings, provider: WhatsAppProvider) -> ReloadReport:
    """Re-read the env files and apply changed Meta credentials to the running daemon.

    Args:
        settings: the daemon's Settings object (changed in place: everything holding it sees the new values).
        provider: the started provider (its token is replaced when it is the cloud client).

    Returns:
        The report; a file that does not validate changes nothing (`error` says why).
    """
    try:
        fresh = load_settings()
    except ConfigError as exc:
        log.error("reload refused, the running configuration is kept: %s", exc)
        return ReloadReport(error=str(exc))
    need_restart = sorted(
        name
        for name in type(settings).model_fields
        if name not in RELOADABLE and getattr(fresh, name) != getattr(settings, name)
    )
    if need_restart:
        log.warning("changed in the env files but applied only by a restart: %s", ", ".join(need_restart))
    if settings.is_sandbox:
        log.info("reload: the sandbox provider uses its own simulated credentials; nothing to swap")
        return ReloadReport(need_restart=need_restart)
    applied: list[str] = []
    for name in RELOADABLE:
        new = getattr(fresh, name)
        if _secret(new) == _secret(getattr(settings, name)):
            continue
        if name == "WHATSAPP_ACCESS_TOKEN" and new is None:
            log.error("reload: WHATSAPP_ACCESS_TOKEN is no longer set; the daemon keeps the token it has")
            continue
        setattr(settings, name, new)
        applied.append(name)
    if "WHATSAPP_ACCESS_TOKEN" in applied:
        set_token = getattr(provider, "set_access_token", None)
        if callable(set_token):
            set_token(settings.WHATSAPP_ACCESS_TOKEN)
    if applied:
        log.info("reload: new %s in use from the next request on", ", ".join(applied))
    else:
        log.info("reload: Meta credentials unchanged")
    return ReloadReport(applied=applied, need_restart=need_restart)
