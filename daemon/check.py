"""Provides `blast-daemon check`: validate the configuration and reach the database, Redis and Meta.

Every check prints one line, `ok`, `warn` or `FAIL`, then the area and what was found; a FAIL line says what to
do. The exit status is non-zero when any check failed. Secrets are never printed (URLs are masked). The
sandbox provider is announced loudly, since nothing it "sends" reaches WhatsApp.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from shared.config import Settings, env_files, mask_url
from shared.errors import BlastError, ConfigError
from shared.redis_conn import (
    EVICTING_POLICIES,
    describe_server,
    eviction_warning,
    make_client,
    redis_hint,
    redis_reason,
    target_text,
)
from shared.text import first_line
from shared.whatsapp.base import GraphApiError, PhoneNumberInfo

Level = Literal["ok", "warn", "FAIL"]
T = TypeVar("T")

#: Each remote check gives up after this long.
CHECK_TIMEOUT_S = 10.0
#: Secrets the daemon alone may read: they must live in a 0600 file, never in the operators' file.
DAEMON_SECRETS = ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET")
#: Meta's standard throughput (messages per second per number) before it is raised to HIGH.
STANDARD_MPS = 80.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report.

    Attributes:
        level: ok, warn (works, but look at it) or FAIL (fix it).
        area: config, files, database, redis, daemons, provider, meta, webhook.
        text: what was found, and for FAIL what to do.
    """

    level: Level
    area: str
    text: str

    def line(self) -> str:
        return f"{self.level:<4} {self.area}: {self.text}"


def _ok(area: str, text: str) -> Finding:
    return Finding("ok", area, text)


def _warn(area: str, text: str) -> Finding:
    return Finding("warn", area, text)


def _fail(area: str, text: str) -> Finding:
    return Finding("FAIL", area, text)


async def _timed(what: Awaitable[T]) -> T:
    return await asyncio.wait_for(what, CHECK_TIMEOUT_S)


# --- configuration ----------------------------------------------------------------------------------------
def _keys_in(path: str) -> set[str]:
    """Variable names set in an env file (values are not kept)."""
    names: set[str] = set()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name = line.removeprefix("export ").split("=", 1)[0].strip()
        if line.split("=", 1)[1].strip():
            names.add(name)
    return names


def check_files() -> list[Finding]:
    """The env files read, and that daemon secrets sit only in a file nobody else can read."""
    files = env_files()
    out: list[Finding] = []
    if not files:
        out.append(_warn("files", "no env file read (settings come from the environment only)"))
        return out
    out.append(_ok("files", "read " + ", ".join(files)))
    for path in files:
        secrets_here = sorted(_keys_in(path) & set(DAEMON_SECRETS))
        if not secrets_here:
            continue
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            out.append(
                _fail(
                    "files",
                    f"{path} holds {', '.join(secrets_here)} but its mode is {mode:04o}: move them to "
                    "/etc/blast/secrets.env (owner blast, mode 0600) or `chmod 600 {path}`",
                )
            )
    return out


def check_config(settings: Settings) -> list[Finding]:
    """What the values say about the deployment (no network)."""
    out: list[Finding] = []
    if settings.is_sandbox:
        out.append(
            _warn(
                "provider",
                "WHATSAPP_PROVIDER=sandbox: SIMULATED, NOTHING IS SENT TO WHATSAPP; set "
                "WHATSAPP_PROVIDER=cloud with the Meta credentials in /etc/blast/secrets.env for real sends",
            )
        )
    else:
        needed = {
            "WHATSAPP_ACCESS_TOKEN": "sending and template sync",
            "WHATSAPP_PHONE_NUMBER_ID": "sending",
            "WHATSAPP_BUSINESS_ACCOUNT_ID": "template sync and this check",
            "WHATSAPP_APP_SECRET": "accepting Meta's signed webhooks (delivery statuses)",
        }
        missing = [f"{name} (for {why})" for name, why in needed.items() if not getattr(settings, name)]
        for item in missing:
            out.append(_fail("config", f"{item} is not set: add it to /etc/blast/secrets.env"))
        if settings.WHATSAPP_VERIFY_TOKEN is None:
            out.append(
                _warn(
                    "config",
                    "WHATSAPP_VERIFY_TOKEN is not set: Meta's webhook verification handshake will be refused",
                )
            )
        if not missing:
            out.append(_ok("provider", f"cloud, Graph API {settings.WHATSAPP_API_URL}"))
    if settings.BLAST_HTTP_HOST in ("0.0.0.0", "::", ""):
        out.append(
            _warn(
                "config",
                f"BLAST_HTTP_HOST={settings.BLAST_HTTP_HOST or '(empty)'} serves /metrics and /healthz on every "
                "interface: bind 127.0.0.1 and publish only /webhook through the HTTPS proxy",
            )
        )
    if settings.BLAST_HTTP_PORT == 0:
        out.append(_warn("config", "BLAST_HTTP_PORT=0: no webhooks, no /healthz, no /metrics"))
    if settings.DATABASE_URL.startswith("sqlite://"):
        path = settings.DATABASE_URL[len("sqlite://") :].split("?", 1)[0]
        if path and not path.startswith("/") and path != ":memory:":
            out.append(
                _warn("config", f"DATABASE_URL points to a relative SQLite path {path!r}: use /var/lib/…")
            )
    return out


# --- database and Redis -----------------------------------------------------------------------------------
async def check_database(settings: Settings) -> list[Finding]:
    """Connect, read the schema version, compare it with what this release runs on."""
    from tortoise import Tortoise, connections

    from shared.db import (
        OLDEST_SUPPORTED_SCHEMA,
        _compatible_code_floor,
        close_db,
        known_migrations,
        schema_state,
        tortoise_config,
    )

    url = mask_url(settings.DATABASE_URL)
    try:
        # Not under wait_for: tortoise binds its context to the task that initialises it (this one).
        await Tortoise.init(config=tortoise_config(settings.DATABASE_URL))
        await _timed(connections.get("default").execute_query("SELECT 1"))
    except Exception as exc:
        await close_db()
        return [_fail("database", f"cannot connect to {url}: {_reason(exc)}")]
    try:
        applied, missing, unknown = await _timed(schema_state())
        floor = await _timed(_compatible_code_floor()) if unknown else None
        compatible = floor is not None and floor in await known_migrations()
    except Exception as exc:
        return [_fail("database", f"{url} answers but its schema cannot be read: {_reason(exc)}")]
    finally:
        await close_db()
    out = [_ok("database", f"{url} reachable, schema {applied[-1] if applied else '(empty)'}")]
    if unknown and compatible:
        out.append(
            _warn(
                "database",
                f"the schema is newer than this program (has {', '.join(unknown)}) but still runs this release "
                f"(it needs {floor}): upgrade blast here soon",
            )
        )
    elif unknown:
        out.append(
            _fail(
                "database",
                f"the schema is newer than this program (has {', '.join(unknown)}): upgrade blast here",
            )
        )
    elif applied and OLDEST_SUPPORTED_SCHEMA in missing:
        out.append(
            _fail(
                "database", f"the schema is older than {OLDEST_SUPPORTED_SCHEMA}: run `blast-daemon migrate`"
            )
        )
    elif applied and missing:
        how = (
            "the daemon applies them at start"
            if settings.BLAST_AUTO_MIGRATE
            else "run `blast-daemon migrate` (BLAST_AUTO_MIGRATE=false)"
        )
        out.append(_warn("database", f"migrations not applied yet: {', '.join(missing)}; {how}"))
    elif not applied:
        out.append(_warn("database", "the database is empty: the first start creates the schema"))
    return out


async def check_redis(settings: Settings) -> list[Finding]:
    """Ping Redis, and look at the daemons that report to it."""
    from shared.services import live

    url = target_text(settings)
    client = make_client(settings, socket_connect_timeout=3, socket_timeout=5)
    try:
        try:
            await _timed(client.ping())
            server = await _timed(describe_server(settings, client))
        except Exception as exc:
            verb = "refused by" if redis_hint(exc) else "cannot reach"
            return [_fail("redis", f"{verb} {url}: {redis_reason(exc)}")]
        out = [
            _ok(
                "redis",
                f"{url} reachable: {server.text()}, Redis {server.version}, prefix {settings.BLAST_REDIS_PREFIX}",
            )
        ]
        if server.role != "master":
            out.append(
                _fail(
                    "redis",
                    f"{server.address} is a {server.role}: the daemons write to Redis; point REDIS_URL at the "
                    "master, or use REDIS_SENTINELS to follow it",
                )
            )
        if server.maxmemory_policy in EVICTING_POLICIES:
            out.append(_warn("redis", eviction_warning(server.maxmemory_policy)))
        try:
            alive = [d for d in await _timed(live.daemons(settings, client=client)) if d.alive]
        except Exception as exc:
            return [*out, _warn("daemons", f"cannot read the daemons' heartbeats: {_reason(exc)}")]
        hosts = sorted({d.host for d in alive})
        if not alive:
            out.append(_warn("daemons", "no daemon of this deployment is alive right now"))
        else:
            out.append(_ok("daemons", f"{len(alive)} alive on {', '.join(hosts)}"))
        if len(hosts) > 1 and settings.DATABASE_URL.startswith("sqlite://"):
            out.append(
                _fail(
                    "daemons",
                    "daemons on several hosts share this prefix but the database is SQLite: use PostgreSQL",
                )
            )
        return out
    finally:
        await client.aclose()


# --- Meta -------------------------------------------------------------------------------------------------
def _meta_error(exc: GraphApiError, settings: Settings) -> Finding:
    code = exc.error.code
    if code == 190:
        return _fail(
            "meta",
            "the access token was rejected (code 190): put a valid System User token in WHATSAPP_ACCESS_TOKEN, "
            "then `systemctl reload blast-daemon`",
        )
    if code == 100:
        return _fail(
            "meta",
            f"{exc} — check WHATSAPP_PHONE_NUMBER_ID={settings.WHATSAPP_PHONE_NUMBER_ID} and "
            f"WHATSAPP_BUSINESS_ACCOUNT_ID={settings.WHATSAPP_BUSINESS_ACCOUNT_ID}, and that the token's "
            "system user has whatsapp_business_messaging and whatsapp_business_management on them",
        )
    return _fail("meta", str(exc))


def _number_findings(info: PhoneNumberInfo, settings: Settings) -> list[Finding]:
    out = [
        _ok(
            "meta",
            f"token valid; number {info.display_phone_number or '?'} ({info.verified_name or 'no name'}), "
            f"quality {info.quality_rating or '?'}, messaging limit {info.messaging_limit_tier or '?'}, "
            f"throughput {info.throughput_level or '?'}",
        )
    ]
    quality = (info.quality_rating or "").upper()
    if quality == "RED":
        out.append(
            _fail(
                "meta",
                "quality rating RED: Meta may lower the messaging limit; pause marketing blasts and "
                "review recent templates",
            )
        )
    elif quality == "YELLOW":
        out.append(
            _warn("meta", "quality rating YELLOW: watch opt-outs and blocks before the next big blast")
        )
    if (
        info.throughput_level or "STANDARD"
    ).upper() == "STANDARD" and settings.BLAST_RATE_LIMIT > STANDARD_MPS:
        out.append(
            _warn(
                "meta",
                f"BLAST_RATE_LIMIT={settings.BLAST_RATE_LIMIT:g}/s but the number's throughput is STANDARD "
                f"({STANDARD_MPS:g}/s): Meta will throttle (130429)",
            )
        )
    return out


async def check_meta(settings: Settings) -> list[Finding]:
    """Token, number, account pairing, limits and webhook subscription, as Meta sees them (cloud only)."""
    if settings.is_sandbox:
        return [_warn("meta", "not checked: the sandbox provider never talks to Meta")]
    from shared.whatsapp.cloud import CloudClient

    try:
        client = CloudClient.from_settings(settings)
    except ConfigError as exc:
        return [_fail("meta", f"not checked: {exc}")]
    out: list[Finding] = []
    async with client:
        try:
            info = await _timed(client.phone_number_info())
        except GraphApiError as exc:
            return [_meta_error(exc, settings)]
        except TimeoutError:
            return [_fail("meta", f"{settings.WHATSAPP_API_URL} did not answer in {CHECK_TIMEOUT_S:g} s")]
        out.extend(_number_findings(info, settings))
        if not settings.WHATSAPP_BUSINESS_ACCOUNT_ID:
            return out
        waba = settings.WHATSAPP_BUSINESS_ACCOUNT_ID
        try:
            numbers = await _timed(client.business_phone_number_ids())
            if settings.WHATSAPP_PHONE_NUMBER_ID in numbers:
                out.append(_ok("meta", f"phone number id belongs to business account {waba}"))
            else:
                owned = ", ".join(numbers) or "none"
                out.append(
                    _fail(
                        "meta",
                        f"WHATSAPP_PHONE_NUMBER_ID={settings.WHATSAPP_PHONE_NUMBER_ID} is not a number of "
                        f"WHATSAPP_BUSINESS_ACCOUNT_ID={waba} (it has: {owned}): templates would be synced "
                        "from one account and sent from another",
                    )
                )
            apps = await _timed(client.subscribed_apps())
            if apps:
                out.append(_ok("webhook", f"business account {waba} sends webhooks to app {', '.join(apps)}"))
            else:
                out.append(
                    _fail(
                        "webhook",
                        f"no app is subscribed to business account {waba}: Meta sends no delivery statuses; "
                        f"POST /{waba}/subscribed_apps with the token, and set the callback URL in the app",
                    )
                )
        except GraphApiError as exc:
            out.append(_meta_error(exc, settings))
        except TimeoutError:
            out.append(_fail("meta", f"{settings.WHATSAPP_API_URL} did not answer in {CHECK_TIMEOUT_S:g} s"))
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {CHECK_TIMEOUT_S:g} s"
    return first_line(exc, limit=200)


async def run_checks(settings: Settings) -> list[Finding]:
    """Every check, in the order printed.

    Args:
        settings: the deployment as the daemon would read it.

    Returns:
        The findings; any with level FAIL means `check` exits non-zero.
    """
    findings = [*check_files(), *check_config(settings)]
    findings.extend(await check_database(settings))
    findings.extend(await check_redis(settings))
    findings.extend(await check_meta(settings))
    return findings


def run() -> int:
    """`blast-daemon check`: print one line per finding.

    Returns:
        The exit status: 0 when nothing failed, 1 when a check failed, 2 when the settings do not validate.
    """
    from shared.config import load_settings

    try:
        settings = load_settings()
    except BlastError as exc:
        print(Finding("FAIL", "config", str(exc)).line())
        return 2
    findings = asyncio.run(run_checks(settings))
    for finding in findings:
        print(finding.line())
    return 1 if any(f.level == "FAIL" for f in findings) else 0
