"""Provides the WhatsApp Cloud API client: one pooled aiohttp session, typed results, classified errors."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr
from yarl import URL

from shared import metrics
from shared.errors import ConfigError
from shared.whatsapp.base import (
    ErrorClass,
    GraphApiError,
    GraphError,
    PhoneNumberInfo,
    SendAccepted,
    SendFailed,
    SendResult,
    TemplateInfo,
    TemplateSubmitted,
)
from shared.whatsapp.errors import classify_response, network_error
from shared.whatsapp.lean_http import LeanClient, MaybeSent, NotSent

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

#: Fields asked for when listing templates (everything the template sync stores).
TEMPLATE_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "language",
    "status",
    "category",
    "parameter_format",
    "components",
    "quality_score",
    "rejected_reason",
)
PHONE_FIELDS: tuple[str, ...] = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "whatsapp_business_manager_messaging_limit",
    "messaging_limit_tier",
    "throughput",
)
LEGACY_PHONE_FIELDS: tuple[str, ...] = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "messaging_limit_tier",
    "throughput",
)
#: Connections kept to Meta: 1,000 req/s at 50 ms needs ~50 in flight; room for slow answers and bursts.
DEFAULT_POOL_SIZE = 256
CALLBACK_DATA_MAX = 512
#: Meta's "access token rejected" (expired, revoked, or a wrong token).
TOKEN_REJECTED_CODE = 190
_TIER = re.compile(r"^TIER_(\d+)(K?)$")
_MAX_PAGES = 10_000


_dumps = json.JSONEncoder(separators=(",", ":")).encode
#: a JSON string literal ("…" with escapes, ASCII only), in C
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def daily_limit_of(tier: str | None) -> int | None:
    """Unique users per moving 24 h for a tier name such as TIER_2K (None: unlimited or unknown)."""
    match = _TIER.match(tier or "")
    if match is None:
        return None
    return int(match.group(1)) * (1000 if match.group(2) else 1)


def _mask(number: str) -> str:
    digits = number.lstrip("+")
    return f"{digits[:5]}****{digits[-3:]}" if len(digits) >= 10 else "****"


class CloudClient:
    """The `cloud` provider: Meta's WhatsApp Cloud API over one long-lived, pooled aiohttp session.

    The access token lives only in a SecretStr and in each request's Authorization header: it is never in
    a log line, an exception, a result or this object's repr.

    Args:
        api_url: Graph API base URL with its version, e.g. https://graph.facebook.com/v24.0.
        access_token: the system-user token.
        phone_number_id: the sender number's id (for /messages and the number's standing).
        business_account_id: the WABA id (for templates); template calls raise ConfigError without it.
        timeout_s: per-request limit for getting a connection, and for each read of the answer.
        use_marketing_endpoint: send MARKETING templates through /marketing_messages.
        pool_size: connections kept to Meta at most.
        session: a process-wide session to use (not closed by `close`); one is created otherwise.
        name: `cloud`, or what a wrapping provider calls itself.
    """

    def __init__(
        self,
        *,
        api_url: str,
        access_token: SecretStr | str,
        phone_number_id: str,
        business_account_id: str | None = None,
        timeout_s: float = 15.0,
        use_marketing_endpoint: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        session: aiohttp.ClientSession | None = None,
        name: str = "cloud",
        send_client: str = "lean",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = access_token if isinstance(access_token, SecretStr) else SecretStr(access_token)
        self.phone_number_id = phone_number_id
        self.business_account_id = business_account_id
        self.timeout_s = timeout_s
        self.use_marketing_endpoint = use_marketing_endpoint
        self.pool_size = pool_size
        self._session = session
        self._owns_session = session is None
        self._name = name
        # Not a total timeout: a connect-stage timeout (pool wait included) proves the request never left,
        # a read timeout means it may have; the two are classified differently.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._messages_url = URL(f"{self.api_url}/{phone_number_id}/messages")
        self._marketing_url = URL(f"{self.api_url}/{phone_number_id}/marketing_messages")
        self._headers: dict[str, dict[str, str]] = {}
        self._send_client = send_client
        self._lean: LeanClient | None = None
        #: request heads of the lean client, per URL (built once per token)
        self._lean_heads: dict[URL, bytes] = {}
        #: (template, language) -> the encoded start of a send body (the same for every recipient)
        self._heads: dict[tuple[str, str], bytes] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: aiohttp.ClientSession | None = None
    ) -> CloudClient:
        """The client for a deployment's WHATSAPP_* settings.

        Raises:
            ConfigError: the token or the phone number id is missing.
        """
        token = settings.WHATSAPP_ACCESS_TOKEN
        if token is None or not settings.WHATSAPP_PHONE_NUMBER_ID:
            raise ConfigError(
                "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID are needed to talk to Meta "
                "(or set WHATSAPP_PROVIDER=sandbox to simulate sending)"
            )
        return cls(
            api_url=settings.WHATSAPP_API_URL,
            access_token=token,
            phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
            business_account_id=settings.WHATSAPP_BUSINESS_ACCOUNT_ID,
            timeout_s=settings.WHATSAPP_TIMEOUT_S,
            use_marketing_endpoint=settings.WHATSAPP_USE_MARKETING_ENDPOINT,
            # every request a daemon holds may be in flight at once: none waits for a pooled connection
            pool_size=max(DEFAULT_POOL_SIZE, settings.BLAST_MAX_IN_FLIGHT),
            session=session,
            send_client=settings.BLAST_SEND_CLIENT,
        )

    # --- provider identity ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def is_sandbox(self) -> bool:
        return False

    def describe(self) -> str:
        return f"cloud: Meta WhatsApp Cloud API at {self.api_url}, sender number id {self.phone_number_id}"

    def __repr__(self) -> str:
        return (
            f"CloudClient(api_url={self.api_url!r}, phone_number_id={self.phone_number_id!r}, "
            f"business_account_id={self.business_account_id!r}, access_token='**********')"
        )

    def set_access_token(self, access_token: SecretStr | str) -> None:
        """Use a new token from the next request on (the daemon's SIGHUP reload after a token rotation).

        Requests already in flight keep the header they were sent with; nothing is dropped or re-sent.
        """
        self._token = access_token if isinstance(access_token, SecretStr) else SecretStr(access_token)
        self._headers = {}
        self._lean_heads = {}

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the session and its connection pool (done on first use otherwise)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.pool_size, limit_per_host=0, keepalive_timeout=30.0, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
            self._owns_session = True
        if self._send_client == "lean" and self._lean is None:
            self._lean = LeanClient(
                self.api_url,
                limit=self.pool_size,
                connect_timeout_s=self.timeout_s,
                read_timeout_s=self.timeout_s,
            )

    async def close(self) -> None:
        """Close the session if this client opened it; safe to call twice."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
        if self._lean is not None:
            await self._lean.close()
            self._lean = None

    async def __aenter__(self) -> CloudClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- transport -----------------------------------------------------------------------------------------
    def _scrub_text(self, text: str) -> str:
        token = self._token.get_secret_value()
        return text.replace(token, "**********") if token and token in text else text

    def _scrub(self, error: GraphError) -> GraphError:
        """The error with the token cut out of every text field (belt and braces: Meta never echoes it).

        Every classified error passes here, so this is also where a rejected token is counted (an alert rule
        watches blast_token_rejected_total).
        """
        if error.code == TOKEN_REJECTED_CODE:
            metrics.TOKEN_REJECTED.inc()
        changes: dict[str, Any] = {}
        for f in dataclass_fields(error):
            value = getattr(error, f.name)
            if isinstance(value, str):
                scrubbed = self._scrub_text(value)
                if scrubbed is not value:
                    changes[f.name] = scrubbed
        return replace(error, **changes) if changes else error

    async def _call(
        self,
        method: str,
        url: URL | str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, CIMultiDictProxy[str]] | GraphError:
        """One HTTP exchange; network failures come back classified, never raised."""
        if self._session is None or self._session.closed:
            await self.start()
        assert self._session is not None
        headers = self._headers.get("json" if body is not None else "")
        if headers is None:  # built once per token (set_access_token starts afresh)
            headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            self._headers["json" if body is not None else ""] = headers
        try:
            async with self._session.request(
                method, url, data=body, params=params, headers=headers, timeout=self._timeout
            ) as resp:
                data = await resp.read()
                return resp.status, data, resp.headers
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # No connection was made (refused, DNS, TLS, or no free pooled connection in time).
            return self._scrub(network_error(sent=False, what=self._what(exc)))
        except aiohttp.InvalidURL as exc:
            meaning = f"the Graph API URL is invalid ({self._what(exc)}): check WHATSAPP_API_URL"
            return self._scrub(GraphError(ErrorClass.BLAST_FATAL, None, None, meaning))
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Read timeout, server disconnected, reset mid-answer, truncated body: it may have been sent.
            return self._scrub(network_error(sent=True, what=self._what(exc)))

    async def _post_lean(self, url: URL, body: bytes) -> tuple[int, bytes, Mapping[str, str]] | GraphError:
        """One send through the lean client; network failures come back classified, as `_call`'s."""
        if self._lean is None:
            await self.start()
        assert self._lean is not None
        head = self._lean_heads.get(url)
        if head is None:
            token = self._token.get_secret_value()
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            head = self._lean_heads[url] = self._lean.head(url.raw_path, headers)
        try:
            status, data, headers = await self._lean.post(head, body)
        except NotSent as exc:
            return self._scrub(network_error(sent=False, what=self._what(exc)))
        except MaybeSent as exc:
            return self._scrub(network_error(sent=True, what=self._what(exc)))
        if 200 <= status < 300:
            return status, data, headers
        return status, data, CIMultiDictProxy(CIMultiDict(headers))  # errors read Retry-After and the like

    def _what(self, exc: BaseException) -> str:
        text = str(exc) or "no detail"
        return self._scrub_text(f"{type(exc).__name__}: {text}"[:300])

    async def _json(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else None
        answer = await self._call(method, url, body=body, params=params)
        if isinstance(answer, GraphError):
            raise GraphApiError(answer, context=what)
        status, data, headers = answer
        if not 200 <= status < 300:
            raise GraphApiError(self._scrub(classify_response(status, data, headers)), context=what)
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            meaning = f"the Graph API answered HTTP {status} with a body that is not a JSON object"
            raise GraphApiError(GraphError(ErrorClass.RETRY_LATER, None, status, meaning), context=what)
        return parsed

    def _require_waba(self, what: str) -> str:
        if not self.business_account_id:
            raise ConfigError(f"{what} needs WHATSAPP_BUSINESS_ACCOUNT_ID (the WhatsApp Business Account id)")
        return self.business_account_id

    # --- sending -------------------------------------------------------------------------------------------
    async def send_template(
        self,
        *,
        to: str,
        template: str,
        language: str,
        components: Sequence[Mapping[str, Any]] = (),
        callback_data: str | None = None,
        category: str | None = None,
        product_policy: str | None = None,
    ) -> SendResult:
        """Send one template message.

        Args:
            to: the recipient, E.164 with or without the leading + (sent as digits only).
            template: the template name.
            language: its language code (en and en_US are different templates).
            components: header/body/button components, already in Meta's send shape (named parameters
                carry `parameter_name`).
            callback_data: `biz_opaque_callback_data` (≤ 512 chars), echoed in every status webhook.
            category: the template's current category; MARKETING goes through /marketing_messages when
                WHATSAPP_USE_MARKETING_ENDPOINT is on.
            product_policy: for /marketing_messages: CLOUD_API_FALLBACK or STRICT (Meta's default if None).

        Returns:
            SendAccepted with the wamid, or SendFailed with a classified error. Network and Graph errors
            never raise; an answer lost after the request left is UNKNOWN_OUTCOME and must not be re-sent.

        Raises:
            ValueError: callback_data longer than 512 characters (a bug in the caller).
        """
        if callback_data is not None and len(callback_data) > CALLBACK_DATA_MAX:
            raise ValueError(f"callback_data is {len(callback_data)} characters; Meta takes at most 512")
        marketing = self.use_marketing_endpoint and (category or "").upper() == "MARKETING"
        # Only the recipient's parts are encoded per message; the rest once per template (see _head).
        tail = ['},"to":', _quote(to.lstrip("+"))]
        if callback_data is not None:
            tail += [',"biz_opaque_callback_data":', _quote(callback_data)]
        if marketing and product_policy is not None:
            tail += [',"product_policy":', _quote(product_policy)]
        tail.append("}")
        body = b"".join(
            (
                self._head(template, language),
                _dumps(list(components)).encode() if components else b"[]",
                "".join(tail).encode(),
            )
        )
        url = self._marketing_url if marketing else self._messages_url
        if self._send_client == "lean":
            answer = await self._post_lean(url, body)
        else:
            answer = await self._call("POST", url, body=body)
        if isinstance(answer, GraphError):
            return self._failed(to, template, answer)
        status, data, headers = answer
        if not 200 <= status < 300:
            return self._failed(to, template, self._scrub(classify_response(status, data, headers)))
        accepted = _parse_accepted(data)
        if accepted is None:
            meaning = (
                f"Meta answered HTTP {status} without a message id: the message may have been sent; it is "
                "marked unknown and never re-sent automatically"
            )
            raw = self._scrub_text(data[:2000].decode("utf-8", "replace"))
            return self._failed(
                to, template, GraphError(ErrorClass.UNKNOWN_OUTCOME, None, status, meaning, raw=raw)
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent %s to %s: %s (%s)", template, _mask(to), accepted.wamid, accepted.message_status)
        return accepted

    def _head(self, template: str, language: str) -> bytes:
        """The encoded start of every send body of a template, up to its components: `{"messaging_product":
        …,"template":{"name":…,"language":{…},"components":` (the body ends `},"to":…}`)."""
        key = (template, language)
        head = self._heads.get(key)
        if head is None:
            fixed = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "type": "template",
                "template": {"name": template, "language": {"policy": "deterministic", "code": language}},
            }
            head = _dumps(fixed)[:-2].encode() + b',"components":'
            if len(self._heads) > 1000:  # templates are few; a runaway caller must not grow this forever
                self._heads.clear()
            self._heads[key] = head
        return head

    def _failed(self, to: str, template: str, error: GraphError) -> SendFailed:
        level = logging.WARNING if error.error_class is ErrorClass.UNKNOWN_OUTCOME else logging.DEBUG
        if not log.isEnabledFor(level):
            return SendFailed(error)
        log.log(
            level,
            "send %s to %s failed: %s (code %s, HTTP %s)",
            template,
            _mask(to),
            error.error_class.value,
            error.code,
            error.http_status,
        )
        return SendFailed(error)

    # --- templates -----------------------------------------------------------------------------------------
    async def list_templates(
        self, *, limit: int = 100, fields: Sequence[str] = TEMPLATE_FIELDS
    ) -> list[TemplateInfo]:
        """Every template of the business account, page by page until Meta gives no `next`.

        Args:
            limit: templates per page asked for (Meta may answer fewer; a short page is not the end).
            fields: the fields to ask for.

        Returns:
            The templates in Meta's order.

        Raises:
            ConfigError: WHATSAPP_BUSINESS_ACCOUNT_ID is not set.
            GraphApiError: Meta refused, or could not be reached (its `error` says what to do).
        """
        waba = self._require_waba("listing templates")
        url = f"{self.api_url}/{waba}/message_templates"
        params = {"fields": ",".join(fields), "limit": str(limit)}
        out: list[TemplateInfo] = []
        after: str | None = None
        for page in range(1, _MAX_PAGES + 1):
            query = {**params, "after": after} if after else params
            data = await self._json("GET", url, f"listing templates (page {page})", params=query)
            items = data.get("data")
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    out.append(_template_info(item))
            paging = data.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            # Stop only when `next` is absent: short and even empty pages may still have one.
            if not paging.get("next"):
                log.debug("listed %d templates in %d pages", len(out), page)
                return out
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not after:
                # No cursor to build the next URL from; Meta's `next` link (it carries the token) is not
                # followed blindly: stop here rather than loop.
                log.warning("template list page %d has `next` but no `after` cursor; stopping there", page)
                return out
        raise GraphApiError(
            GraphError(
                ErrorClass.RETRY_LATER, None, None, f"template list did not end after {_MAX_PAGES} pages"
            ),
            context="listing templates",
        )

    async def submit_template(
        self,
        *,
        name: str,
        language: str,
        category: str,
        components: Sequence[Mapping[str, Any]],
        parameter_format: str | None = None,
    ) -> TemplateSubmitted:
        """Create a template for Meta's review.

        Args:
            name: lowercase letters, digits and underscores.
            language: e.g. en_US.
            category: MARKETING, UTILITY or AUTHENTICATION.
            components: the definition (HEADER/BODY/FOOTER/BUTTONS) with examples.
            parameter_format: POSITIONAL or NAMED (Meta's default: POSITIONAL).

        Returns:
            Meta's id, status (usually PENDING) and category.

        Raises:
            ConfigError: WHATSAPP_BUSINESS_ACCOUNT_ID is not set.
            GraphApiError: Meta refused (e.g. the name exists in that language) or could not be reached.
        """
        waba = self._require_waba("submitting a template")
        payload: dict[str, Any] = {
            "name": name,
            "language": language,
            "category": category.upper(),
            "components": [dict(c) for c in components],
        }
        if parameter_format:
            payload["parameter_format"] = parameter_format.upper()
        what = f"submitting template {name} ({language})"
        data = await self._json("POST", f"{self.api_url}/{waba}/message_templates", what, payload=payload)
        if data.get("id") is None:
            meaning = "Meta accepted the template without returning its id: run a template sync"
            raise GraphApiError(GraphError(ErrorClass.RETRY_LATER, None, 200, meaning), context=what)
        log.info("submitted template %s (%s): id %s, %s", name, language, data.get("id"), data.get("status"))
        return TemplateSubmitted(
            id=str(data["id"]),
            status=str(data.get("status") or "PENDING"),
            category=str(data.get("category") or category).upper(),
        )

    async def delete_template(self, *, name: str, template_id: str | None = None) -> None:
        """Delete a template (every language of `name`, or only `template_id`).

        Raises:
            ConfigError: WHATSAPP_BUSINESS_ACCOUNT_ID is not set.
            GraphApiError: Meta refused or could not be reached.
        """
        waba = self._require_waba("deleting a template")
        params = {"name": name, **({"hsm_id": template_id} if template_id else {})}
        await self._json(
            "DELETE", f"{self.api_url}/{waba}/message_templates", f"deleting template {name}", params=params
        )

    # --- the number's standing -----------------------------------------------------------------------------
    async def phone_number_info(self) -> PhoneNumberInfo:
        """The sender number's messaging limit tier, quality rating and throughput level.

        Raises:
            GraphApiError: Meta refused or could not be reached.
        """
        url = f"{self.api_url}/{self.phone_number_id}"
        what = f"reading phone number {self.phone_number_id}"
        try:
            data = await self._json("GET", url, what, params={"fields": ",".join(PHONE_FIELDS)})
        except GraphApiError as exc:
            if exc.error.code != 100:
                raise
            # An API version without the newer limit field rejects it: ask for the deprecated one only.
            data = await self._json("GET", url, what, params={"fields": ",".join(LEGACY_PHONE_FIELDS)})
        tier = data.get("whatsapp_business_manager_messaging_limit") or data.get("messaging_limit_tier")
        throughput = data.get("throughput")
        level = throughput.get("level") if isinstance(throughput, dict) else None
        return PhoneNumberInfo(
            id=str(data.get("id") or self.phone_number_id),
            display_phone_number=_str_or_none(data.get("display_phone_number")),
            verified_name=_str_or_none(data.get("verified_name")),
            quality_rating=_str_or_none(data.get("quality_rating")),
            messaging_limit_tier=_str_or_none(tier),
            daily_unique_limit=daily_limit_of(_str_or_none(tier)),
            throughput_level=_str_or_none(level),
            raw=data,
        )

    # --- account checks (`blast-daemon check`) -------------------------------------------------------------
    async def business_phone_number_ids(self) -> list[str]:
        """Ids of the numbers the WABA owns (first page: a WABA has a handful), to see the pair matches.

        Raises:
            ConfigError: WHATSAPP_BUSINESS_ACCOUNT_ID is not set.
            GraphApiError: Meta refused or could not be reached.
        """
        waba = self._require_waba("checking the sender number's account")
        data = await self._json(
            "GET",
            f"{self.api_url}/{waba}/phone_numbers",
            f"listing the phone numbers of business account {waba}",
            params={"fields": "id", "limit": "100"},
        )
        rows = data.get("data")
        return (
            [str(r["id"]) for r in rows if isinstance(r, dict) and "id" in r]
            if isinstance(rows, list)
            else []
        )

    async def subscribed_apps(self) -> list[str]:
        """Names (or ids) of the apps subscribed to the WABA's webhooks; empty: Meta sends no webhooks.

        Raises:
            ConfigError: WHATSAPP_BUSINESS_ACCOUNT_ID is not set.
            GraphApiError: Meta refused or could not be reached.
        """
        waba = self._require_waba("checking the webhook subscription")
        data = await self._json(
            "GET",
            f"{self.api_url}/{waba}/subscribed_apps",
            f"reading the webhook subscriptions of business account {waba}",
        )
        rows = data.get("data")
        out: list[str] = []
        for row in rows if isinstance(rows, list) else []:
            app = row.get("whatsapp_business_api_data") if isinstance(row, dict) else None
            if isinstance(app, dict):
                out.append(str(app.get("name") or app.get("id") or "?"))
        return out


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _parse_accepted(data: bytes) -> SendAccepted | None:
    try:
        parsed = json.loads(data)
        message = parsed["messages"][0]
        wamid = message["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(wamid, str) or not wamid:
        return None
    wa_id: str | None = None
    contacts = parsed.get("contacts")
    if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict):
        wa_id = _str_or_none(contacts[0].get("wa_id"))
    status = message.get("message_status") if isinstance(message, dict) else None
    return SendAccepted(wamid=wamid, wa_id=wa_id, message_status=str(status or "accepted"))


def _template_info(item: Mapping[str, Any]) -> TemplateInfo:
    quality = item.get("quality_score")
    if isinstance(quality, dict):
        quality = quality.get("score")
    components = item.get("components")
    return TemplateInfo(
        id=str(item.get("id", "")),
        name=str(item.get("name", "")),
        language=str(item.get("language", "")),
        status=str(item.get("status", "")).upper(),
        category=str(item.get("category", "")).upper(),
        parameter_format=str(item.get("parameter_format") or "POSITIONAL").upper(),
        components=[c for c in components if isinstance(c, dict)] if isinstance(components, list) else [],
        quality_score=_str_or_none(quality),
        rejected_reason=_str_or_none(item.get("rejected_reason")),
        raw=dict(item),
    )
