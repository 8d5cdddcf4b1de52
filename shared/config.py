"""Provides the one Settings object both programs read from the environment and env files."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError
from shared.parsing.quiet import parse_quiet_hours

#: Env files read in this order; later files override earlier ones, the process environment overrides all.
#: blast.env is the group-readable operator file, secrets.env the daemon's 0600 file (see deploy/).
SYSTEM_ENV_FILES: tuple[str, ...] = ("/etc/blast/blast.env", "/etc/blast/secrets.env")
LOCAL_ENV_FILE = ".env"

DEFAULT_DATABASE_URL = "sqlite:///var/lib/blast/blast.db"
SECRET_FIELDS = frozenset(
    {
        "WHATSAPP_ACCESS_TOKEN",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "REDIS_PASSWORD",
        "REDIS_SENTINEL_PASSWORD",
    }
)
DEFAULT_SENTINEL_PORT = 26379


class Settings(BaseSettings):
    """Every setting of blast; field names are the environment variables."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        extra="ignore",
        env_file_encoding="utf-8",
        validate_default=True,
        use_attribute_docstrings=True,
    )

    # --- storage -------------------------------------------------------------------------------------
    DATABASE_URL: str = DEFAULT_DATABASE_URL
    """tortoise URL: sqlite:///abs/path.db or postgres://user:pass@host:5432/db (postgresql:// accepted)."""
    BLAST_AUTO_MIGRATE: bool = True
    """The daemon upgrades the schema at start; with false it refuses an old schema instead."""

    REDIS_HOST: str = "127.0.0.1"
    """Redis host (ignored when REDIS_URL is set)."""
    REDIS_PORT: int = Field(6379, ge=1, le=65535)
    """Redis port."""
    REDIS_PASSWORD: SecretStr | None = None
    """Redis password, if any."""
    REDIS_DB: int = Field(0, ge=0)
    """Redis database number."""
    REDIS_URL: str | None = None
    """Full Redis URL; overrides the four settings above."""
    REDIS_USERNAME: str | None = None
    """Redis ACL user (with REDIS_PASSWORD, or the password in REDIS_URL); a user named in REDIS_URL wins."""
    REDIS_TLS: bool = False
    """Talk TLS to Redis (and to the sentinels); a rediss:// REDIS_URL turns it on too."""
    REDIS_TLS_CA_FILE: str | None = None
    """PEM file of the CA(s) that signed Redis's certificate (default: the system's trusted CAs)."""
    REDIS_TLS_CERT_FILE: str | None = None
    """PEM client certificate, for a Redis that wants one (tls-auth-clients yes); needs REDIS_TLS_KEY_FILE."""
    REDIS_TLS_KEY_FILE: str | None = None
    """PEM private key of REDIS_TLS_CERT_FILE."""
    REDIS_SENTINELS: str | None = None
    """Sentinels as host:port,host:port,…: follow the master they name (the host and port of REDIS_URL or
    REDIS_HOST/REDIS_PORT are then not used; database number, user and password are)."""
    REDIS_SENTINEL_MASTER: str = Field("mymaster", min_length=1)
    """Name of the master the sentinels monitor."""
    REDIS_SENTINEL_PASSWORD: SecretStr | None = None
    """Password of the sentinels themselves (their requirepass), if any."""
    BLAST_REDIS_PREFIX: str = Field("blast", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """Prefix of every Redis key and channel, so two deployments can share one Redis."""

    # --- WhatsApp ------------------------------------------------------------------------------------
    WHATSAPP_PROVIDER: Literal["cloud", "sandbox"] = "cloud"
    """cloud sends through Meta; sandbox simulates Meta in-process (nothing is really sent)."""
    WHATSAPP_API_URL: str = "https://graph.facebook.com/v24.0"
    """Graph API base URL, version included."""
    WHATSAPP_ACCESS_TOKEN: SecretStr | None = None
    """System-user access token (daemon only)."""
    WHATSAPP_PHONE_NUMBER_ID: str | None = None
    """The sender number's id."""
    WHATSAPP_BUSINESS_ACCOUNT_ID: str | None = None
    """The WABA id that owns the templates."""
    WHATSAPP_APP_SECRET: SecretStr | None = None
    """App secret that signs webhooks (daemon only)."""
    WHATSAPP_VERIFY_TOKEN: SecretStr | None = None
    """Token of Meta's webhook verification handshake."""
    WHATSAPP_USE_MARKETING_ENDPOINT: bool = False
    """Send MARKETING templates through /marketing_messages instead of /messages."""
    WHATSAPP_TIMEOUT_S: float = Field(15.0, gt=0)
    """Per-request timeout towards Meta, seconds."""
    BLAST_SEND_CLIENT: Literal["lean", "aiohttp"] = "lean"
    """HTTP client of message sends: `lean` (keep-alive HTTP/1.1 with httptools, a quarter of aiohttp's CPU per
    request) or `aiohttp` (every other call to Meta uses aiohttp either way)."""
    WHATSAPP_SANDBOX_DIR: str | None = None
    """Where the sandbox keeps its simulated templates, so console and daemon see the same ones
    (default: beside the SQLite database file, else the temp directory)."""
    WHATSAPP_SANDBOX_FAILURE_RATE: float = Field(0.02, ge=0, le=1)
    """Share of sandbox sends that fail by status webhook (131026/131049), to rehearse failures."""

    # --- sending -------------------------------------------------------------------------------------
    BLAST_RATE_LIMIT: float = Field(80.0, gt=0)
    """Messages per second per sender number, shared by all daemons."""
    BLAST_MAX_IN_FLIGHT: int = Field(1000, ge=1, le=100_000)
    """Most requests a daemon holds at once (in flight, or waiting for their slot): rate x API latency must fit
    (1,000/s at 300 ms needs about 300), and a limit of a million per second makes this the concurrency."""
    BLAST_MISSED_CUTOFF: float = Field(24 * 3600.0, ge=0)
    """Seconds: a schedule missed by more than this is paused instead of sent."""
    BLAST_FAILURE_RATE_THRESHOLD: float = Field(0.2, gt=0, le=1)
    """A blast pauses itself when this share of its last BLAST_FAILURE_RATE_WINDOW results failed."""
    BLAST_FAILURE_RATE_WINDOW: int = Field(500, ge=10)
    """How many recent results the failure-rate auto-pause looks at."""
    BLAST_SYSTEMIC_ERROR_STREAK: int = Field(20, ge=0)
    """Recipients failing in a row with a maybe-systemic code (100, 131008 …) that pause the blast (0: never)."""
    BLAST_RATE_AUDIT: bool = False
    """Record every rate-limiter grant in Redis ({prefix}:rate-audit, capped) to check the pacing (tests, bench)."""
    TEMPLATE_SYNC_INTERVAL: float = Field(1800.0, ge=1)
    """Seconds between template status syncs."""

    # --- daemon HTTP ---------------------------------------------------------------------------------
    BLAST_HTTP_HOST: str = "127.0.0.1"
    """Address of the daemon's webhook/health/metrics server."""
    BLAST_HTTP_PORT: int = Field(8080, ge=0, le=65535)
    """Port of that server (0 disables it)."""

    # --- HTTP API --------------------------------------------------------------------------------------
    BLAST_API: bool = False
    """Serve the authenticated HTTP API under /api/v1/ (Bearer tokens from `blast-console token create`)."""
    BLAST_API_HOST: str | None = None
    """Address of the API's own listener (default: BLAST_HTTP_HOST); needs BLAST_API_PORT."""
    BLAST_API_PORT: int | None = Field(None, ge=1, le=65535)
    """Give the API its own listener on this port (unset: the API shares the webhook server)."""
    BLAST_API_MAX_UPLOAD_MB: int = Field(200, ge=1)
    """Largest API request body (a recipients CSV upload or a JSON list), MiB (larger ones get 413)."""

    # --- webhooks ------------------------------------------------------------------------------------
    BLAST_WEBHOOK_MAX_BODY: int = Field(1024 * 1024, ge=1024)
    """Largest webhook POST body accepted, bytes (larger ones are refused with 413)."""
    BLAST_WEBHOOK_INTAKE: Literal["lean", "aiohttp"] = "lean"
    """Front end of POST /webhook on the HTTP port: `lean` (HTTP/1.1 with httptools, every other request handed
    to aiohttp on the same connection) or `aiohttp` (all requests through aiohttp)."""
    BLAST_OPT_OUT_KEYWORDS: str = (
        "STOP,STOP PROMO,STOP ALL,UNSUBSCRIBE,BERHENTI,BATAL,STOPP,ARRET,ARRÊT,PARAR,BAJA"
    )
    """Comma list of inbound texts that opt the sender out (case-insensitive, trimmed, whole message)."""
    BLAST_OPT_OUT_PAYLOADS: str = "STOP,STOP_PROMO,UNSUBSCRIBE"
    """Comma list of quick-reply button payloads that opt the sender out (case-insensitive)."""
    BLAST_ORPHAN_STATUS_RETENTION_S: float = Field(3600.0, ge=10)
    """Seconds a status matching no recipient is kept (and retried) in case its send result arrives later."""
    BLAST_WEBHOOK_EVENT_RETENTION_S: float = Field(86400.0, ge=0)
    """Seconds a processed raw webhook event is kept for inspection (0: deleted once applied)."""
    BLAST_WEBHOOK_APPLIER: bool = True
    """Apply stored webhook events in this daemon. Off: it only stores and acknowledges them, and another
    daemon on the same database applies them (a second instance on a busy host, see Operations)."""

    # --- people --------------------------------------------------------------------------------------
    BLAST_TIMEZONE: str = "UTC"
    """Zone for times typed without an offset, and for display."""
    BLAST_DEFAULT_REGION: str | None = None
    """ISO region (e.g. ID) for phone numbers written without +country code."""
    BLAST_QUIET_HOURS: str | None = None
    """Daily window (recipient's local time, e.g. 21:00-08:00) in which messages wait; off when unset."""
    BLAST_MESSAGING_LIMIT: int | None = Field(None, ge=1)
    """Unique users per 24 h allowed by Meta's tier, when Meta cannot be asked."""

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("postgresql://"):
            value = "postgres://" + value[len("postgresql://") :]
        if not value.startswith(("sqlite://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgres://")
        return value

    @field_validator("BLAST_TIMEZONE")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Jakarta)") from None
        return value

    @field_validator("BLAST_QUIET_HOURS")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        window = parse_quiet_hours(value)
        return str(window) if window is not None else None

    @field_validator("BLAST_DEFAULT_REGION")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r} (use an ISO 3166 code such as ID or US)")
        return value

    @field_validator("WHATSAPP_API_URL")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://graph.facebook.com/v24.0")
        return value.rstrip("/")

    @field_validator("REDIS_URL")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    # Kept private: the assembled URL may carry the password.
    _redis_url: str = PrivateAttr("")

    @field_validator("REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE")
    @classmethod
    def _tls_file(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not Path(value).is_file():
            raise ValueError(f"no such file {value!r}")
        if not os.access(value, os.R_OK):
            raise ValueError(f"{value!r} is not readable by this user")
        return value

    @field_validator("REDIS_SENTINELS")
    @classmethod
    def _sentinels(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        nodes = [_parse_node(part) for part in value.split(",") if part.strip()]
        if not nodes:
            raise ValueError("expected host:port,host:port,… (e.g. 10.0.0.1:26379,10.0.0.2:26379)")
        return ",".join(node_text(host, port) for host, port in nodes)

    @model_validator(mode="after")
    def _redis_default(self) -> Settings:
        if self.REDIS_URL is None:
            auth = ""
            if self.REDIS_PASSWORD is not None:
                user = quote(self.REDIS_USERNAME, safe="") if self.REDIS_USERNAME else ""
                auth = user + ":" + quote(self.REDIS_PASSWORD.get_secret_value(), safe="") + "@"
            elif self.REDIS_USERNAME:
                auth = quote(self.REDIS_USERNAME, safe="") + "@"
            scheme = "rediss" if self.REDIS_TLS else "redis"
            self._redis_url = f"{scheme}://{auth}{self.REDIS_HOST}:{self.REDIS_PORT}/{self.REDIS_DB}"
        elif self.REDIS_TLS and self.REDIS_URL.startswith("redis://"):
            self._redis_url = "rediss://" + self.REDIS_URL[len("redis://") :]
        elif self.REDIS_TLS and self.REDIS_URL.startswith("unix://"):
            raise ValueError("REDIS_TLS: TLS needs a TCP Redis (redis:// or rediss://), not a unix:// socket")
        else:
            self._redis_url = self.REDIS_URL
        if self.REDIS_SENTINELS and self._redis_url.startswith("unix://"):
            raise ValueError("REDIS_SENTINELS: sentinels name a TCP master; REDIS_URL must not be unix://")
        if (self.REDIS_TLS_CERT_FILE is None) != (self.REDIS_TLS_KEY_FILE is None):
            raise ValueError(
                "REDIS_TLS_CERT_FILE: a client certificate needs both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE"
            )
        tls_files = [
            name
            for name in ("REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE")
            if getattr(self, name) is not None
        ]
        if tls_files and not self.redis_tls:
            raise ValueError(
                f"{tls_files[0]}: set but TLS is off; set REDIS_TLS=1 or use a rediss:// REDIS_URL"
            )
        return self

    @model_validator(mode="after")
    def _api_listener(self) -> Settings:
        if self.BLAST_API_HOST is not None and self.BLAST_API_PORT is None:
            raise ValueError(
                "BLAST_API_HOST needs BLAST_API_PORT (without both, the API shares BLAST_HTTP_HOST:BLAST_HTTP_PORT)"
            )
        return self

    # --- derived -------------------------------------------------------------------------------------
    @property
    def api_has_own_listener(self) -> bool:
        """Whether the API listens on BLAST_API_HOST:BLAST_API_PORT instead of beside the webhook."""
        return self.BLAST_API and self.BLAST_API_PORT is not None

    @property
    def api_host(self) -> str:
        """The address the API's own listener binds to."""
        return self.BLAST_API_HOST or self.BLAST_HTTP_HOST

    @property
    def redis_url(self) -> str:
        """The Redis URL to connect to (may contain the password: never print it)."""
        return self._redis_url

    @property
    def redis_tls(self) -> bool:
        """Whether Redis is spoken to over TLS (REDIS_TLS=1 or a rediss:// URL)."""
        return self._redis_url.startswith("rediss://")

    @property
    def redis_sentinels(self) -> list[tuple[str, int]]:
        """The sentinels' addresses (empty: Redis is reached directly)."""
        if not self.REDIS_SENTINELS:
            return []
        return [_parse_node(part) for part in self.REDIS_SENTINELS.split(",")]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.BLAST_TIMEZONE)

    @property
    def is_sandbox(self) -> bool:
        return self.WHATSAPP_PROVIDER == "sandbox"

    def key(self, *parts: str | int) -> str:
        """A Redis key or channel name under this deployment's prefix."""
        return ":".join([self.BLAST_REDIS_PREFIX, *(str(p) for p in parts)])

    def __repr_args__(self) -> Any:
        # URLs may carry passwords: repr() (and so tracebacks and logs) shows them masked.
        for name, value in super().__repr_args__():
            yield (
                name,
                (
                    mask_url(value)
                    if name in ("DATABASE_URL", "REDIS_URL") and isinstance(value, str)
                    else value
                ),
            )

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets masked, for `check` and debugging output."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                out[name] = "(not set)" if value is None else "********"
            elif name == "DATABASE_URL" or name == "REDIS_URL":
                out[name] = mask_url(value) if value else "(not set)"
            else:
                out[name] = "(not set)" if value is None else str(value)
        return out


def _parse_node(text: str) -> tuple[str, int]:
    """host:port (port 26379 when left out; [v6]:port for IPv6) -> (host, port)."""
    text = text.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([A-Za-z0-9_.-]+)(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"{text!r} is not host:port (e.g. 10.0.0.1:26379)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or DEFAULT_SENTINEL_PORT)
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} out of range")
    return host, port


def node_text(host: str, port: int) -> str:
    """host:port, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def mask_url(url: str) -> str:
    """Hide the password of a URL such as postgres://user:secret@host/db."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:****@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def env_files() -> list[str]:
    """The env files that exist and this user may read (the secrets file is the daemon's only)."""
    override = os.environ.get("BLAST_ENV_FILE")
    candidates = (
        [p for p in override.split(os.pathsep) if p] if override else [*SYSTEM_ENV_FILES, LOCAL_ENV_FILE]
    )
    return [p for p in candidates if Path(p).is_file() and os.access(p, os.R_OK)]


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings.

    Raises:
        ConfigError: one line naming the first bad variable and why.
    """
    try:
        return Settings(_env_file=tuple(env_files()) or None, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        # A check across variables names the one to fix first ("REDIS_TLS_CA_FILE: set but TLS is off …").
        named = re.match(r"([A-Z][A-Z0-9_]+): (.*)", msg) if name == "settings" else None
        if named is not None:
            name, msg = named.group(1), named.group(2)
        value = err.get("input")
        shown = (
            "" if name in SECRET_FIELDS or isinstance(value, dict) or value is None else f" (got {value!r})"
        )
        raise ConfigError(f"invalid setting {name}: {msg}{shown}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (tests call get_settings.cache_clear())."""
    return load_settings()


def config_table_markdown() -> str:
    """The README's configuration table, from the settings' own docs (README tests check it stays true)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "(not set)" if default is None else f"`{default}`"
        meaning = " ".join((info.description or "").split()).replace("|", "/")
        lines.append(f"| `{name}` | {shown} | {meaning} |")
    return "\n".join(lines)
