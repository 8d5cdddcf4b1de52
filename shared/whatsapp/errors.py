"""Provides THE classification of WhatsApp Cloud API errors: code -> what to do and what to tell operators.

Branch on Meta's `error.code`, never on the HTTP status or the message text: Meta has answered the same
throttling codes with 400 in one revision and 429 in the next (docs: reference/whatsapp-cloud-api.md, §2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.whatsapp.base import ErrorClass, GraphError

RETRY = ErrorClass.RETRY_LATER
PERM = ErrorClass.RECIPIENT_PERMANENT
FATAL = ErrorClass.BLAST_FATAL
UNKNOWN = ErrorClass.UNKNOWN_OUTCOME

#: Backoff steps for 131056 (pair rate): the recipient waits 4^n s, others go on.
PAIR_RATE_BACKOFF_S: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)

#: The user stopped marketing messages from this business: the number goes on the suppression list, and a retry
#: never re-queues it.
OPT_OUT = 131050
#: Meta withheld a marketing message (per-user marketing cap): a retry re-queues it only after this many hours.
MARKETING_CAP = 131049
MARKETING_CAP_RESEND_H = 24

#: Raw bodies of unknown errors are kept for the operator, cut to this many characters.
RAW_BODY_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """One row of the table.

    Attributes:
        error_class: what the sender does.
        meaning: what happened, in the operator's words (the code is appended).
        fix: what to do about it.
        throttled: slow the shared limiter (throughput limits).
        pair_rate: only this recipient waits (131056).
        opted_out: add the recipient to the suppression list (131050).
        may_be_systemic: recipient-level, unless it repeats for many recipients in a row (shared payload bug).
        retry_after_s: a sensible first wait, when the code implies one.
    """

    error_class: ErrorClass
    meaning: str
    fix: str
    throttled: bool = False
    pair_rate: bool = False
    opted_out: bool = False
    may_be_systemic: bool = False
    retry_after_s: float | None = None


_TOKEN_FIX = "renew WHATSAPP_ACCESS_TOKEN (use a System User token), then resume"  # noqa: S105 (advice, not a secret)
_PERMISSION = ErrorRule(
    FATAL,
    "the access token lacks a permission or capability",
    "grant whatsapp_business_messaging and whatsapp_business_management to the system user, then resume",
)

#: code -> rule. Sources: reference/whatsapp-cloud-api.md §2.3 (Meta's error-code page, pywa, BSP guides).
ERROR_TABLE: dict[int, ErrorRule] = {
    # --- token, permissions, account: the whole blast would fail -------------------------------------------
    0: ErrorRule(FATAL, "access token rejected by Meta", _TOKEN_FIX),
    190: ErrorRule(FATAL, "access token rejected by Meta (expired or revoked)", _TOKEN_FIX),
    3: _PERMISSION,
    10: _PERMISSION,
    368: ErrorRule(
        FATAL,
        "the business account is temporarily blocked for policy violations",
        "check Account Quality in WhatsApp Manager; resume once the block is lifted",
    ),
    131031: ErrorRule(
        FATAL, "the business account is locked", "check Account Quality in WhatsApp Manager, then resume"
    ),
    131042: ErrorRule(
        FATAL,
        "payment problem on the business account",
        "fix the payment method in Business Manager, then resume",
    ),
    131045: ErrorRule(
        FATAL, "the sender number has a registration problem", "re-register the phone number, then resume"
    ),
    133010: ErrorRule(
        FATAL,
        "the sender number is not registered on Cloud API",
        "register WHATSAPP_PHONE_NUMBER_ID, then resume",
    ),
    131048: ErrorRule(
        FATAL,
        "spam rate limit hit: too many users blocked or reported these messages",
        "check the number's quality rating and the audience's opt-in before resuming",
    ),
    131064: ErrorRule(
        FATAL,
        "messaging limit reduced because of template classification violations",
        "review template categories in WhatsApp Manager, then resume",
    ),
    131063: ErrorRule(
        FATAL,
        "marketing templates are disabled on Cloud API for this account",
        "set WHATSAPP_USE_MARKETING_ENDPOINT=true (Marketing Messages API), then resume",
    ),
    131051: ErrorRule(FATAL, "unsupported message type (a bug in blast)", "report it; the blast is paused"),
    131053: ErrorRule(
        FATAL, "Meta could not fetch the header media", "fix the media URL or id in the template parameters"
    ),
    131047: ErrorRule(
        FATAL,
        "Meta treated the send as a free-form message outside the 24 h window (template payload problem)",
        "check the template name and parameters, then resume",
    ),
    # --- template problems: every recipient would fail ------------------------------------------------------
    132000: ErrorRule(
        FATAL,
        "the number of template parameters does not match the template's placeholders",
        "re-sync templates and fix the blast's parameter columns",
    ),
    132001: ErrorRule(
        FATAL,
        "the template does not exist in this language or is not approved",
        "re-sync templates; check the template name and language code (en and en_US differ)",
    ),
    132007: ErrorRule(
        FATAL, "the template content violates WhatsApp policy", "edit the template and submit it again"
    ),
    132015: ErrorRule(
        FATAL,
        "the template is PAUSED by Meta for low quality",
        "wait until Meta approves it again (the template sync shows it), then resume",
    ),
    132016: ErrorRule(
        FATAL,
        "the template is DISABLED by Meta for good",
        "create a new template and edit the blast to use it",
    ),
    # --- throughput: nothing was sent, slow down -----------------------------------------------------------
    130429: ErrorRule(
        RETRY,
        "throughput limit of the sender number reached",
        "blast slows down and retries by itself",
        throttled=True,
        retry_after_s=1.0,
    ),
    4: ErrorRule(
        RETRY,
        "app-level Graph API call limit reached",
        "sending waits a few minutes and resumes by itself",
        throttled=True,
        retry_after_s=60.0,
    ),
    80007: ErrorRule(
        RETRY,
        "business account rate limit reached",
        "sending waits until Meta restores access and resumes by itself",
        throttled=True,
        retry_after_s=60.0,
    ),
    131056: ErrorRule(
        RETRY,
        "too many messages to this recipient in a short time (pair rate limit)",
        "this recipient is retried after 1, 4, 16, 64 s; the others go on",
        pair_rate=True,
        retry_after_s=PAIR_RATE_BACKOFF_S[0],
    ),
    # --- transient: retry with backoff ---
    131000: ErrorRule(RETRY, "Meta reported an unknown error", "retried with backoff", retry_after_s=2.0),
    131016: ErrorRule(
        RETRY, "WhatsApp is temporarily unavailable", "retried with backoff", retry_after_s=5.0
    ),
    133004: ErrorRule(
        RETRY, "WhatsApp server temporarily unavailable", "retried with backoff", retry_after_s=5.0
    ),
    131057: ErrorRule(
        RETRY,
        "the business account is in maintenance mode (e.g. a throughput upgrade)",
        "sending waits a few minutes and resumes by itself",
        retry_after_s=120.0,
    ),
    1: ErrorRule(RETRY, "Graph API unknown error", "retried a few times, then failed", retry_after_s=2.0),
    2: ErrorRule(RETRY, "Graph API service overloaded or down", "retried with backoff", retry_after_s=5.0),
    # --- this recipient only ---
    131026: ErrorRule(
        PERM,
        "message undeliverable: the number is not on WhatsApp, blocked the business, or runs an old app",
        "nothing to do for this recipient",
    ),
    MARKETING_CAP: ErrorRule(
        PERM,
        "Meta withheld this marketing message to keep the user's engagement healthy (per-user marketing cap)",
        f"do not resend within {MARKETING_CAP_RESEND_H} h",
    ),
    OPT_OUT: ErrorRule(
        PERM,
        "the user stopped marketing messages from this business",
        "the number is added to the suppression list",
        opted_out=True,
    ),
    130472: ErrorRule(
        PERM, "the user is part of a Meta marketing experiment and gets no marketing", "nothing to do"
    ),
    130497: ErrorRule(
        PERM, "the business may not message users in this country", "remove such numbers from the blast"
    ),
    131021: ErrorRule(PERM, "the recipient is the sender number itself", "remove it from the recipients"),
    131030: ErrorRule(
        PERM,
        "the recipient is not in the test number's allowed list",
        "add it in the App Dashboard, or use a production number",
    ),
    135000: ErrorRule(PERM, "generic user error reported by Meta", "see Meta's details for this recipient"),
    # --- recipient data, unless it repeats for everybody ---
    100: ErrorRule(
        PERM,
        "invalid parameter (often an invalid phone number)",
        "check this recipient's data; if every recipient fails, fix the blast",
        may_be_systemic=True,
    ),
    131008: ErrorRule(
        PERM,
        "a required parameter is missing",
        "fill the parameter for this recipient; if every recipient fails, fix the blast",
        may_be_systemic=True,
    ),
    131009: ErrorRule(
        PERM,
        "a parameter value is invalid (phone number or text)",
        "check this recipient's data; if every recipient fails, fix the blast",
        may_be_systemic=True,
    ),
    132005: ErrorRule(
        PERM,
        "the message is too long once the parameters are filled in",
        "shorten this recipient's values; if every recipient fails, shorten the template",
        may_be_systemic=True,
    ),
    132012: ErrorRule(
        PERM,
        "a parameter has the wrong format for the template",
        "check this recipient's values; if every recipient fails, fix the blast",
        may_be_systemic=True,
    ),
}
# 200-299: permission errors (Graph API), same handling as 10.
ERROR_TABLE.update(dict.fromkeys(range(200, 300), _PERMISSION))
#: Codes a retry never re-queues: the number's owner opted out.
NEVER_RETRY_CODES = frozenset(code for code, rule in ERROR_TABLE.items() if rule.opted_out)

_UNKNOWN_429 = ErrorRule(
    RETRY,
    "Meta throttled the request",
    "blast slows down and retries by itself",
    throttled=True,
    retry_after_s=1.0,
)
_UNKNOWN_5XX = ErrorRule(RETRY, "Meta reported a server error", "retried with backoff", retry_after_s=5.0)
_UNKNOWN_4XX = ErrorRule(
    PERM, "Meta rejected the request with an unlisted error", "see the raw error kept for this recipient"
)
_UNKNOWN_WEBHOOK = ErrorRule(
    PERM,
    "Meta reported the message failed with an unlisted error",
    "see the raw error kept for this recipient",
)


def pair_rate_backoff_s(attempt: int) -> float:
    """Seconds a recipient waits after its `attempt`-th (0-based) 131056 in a row: 1, 4, 16, 64, 64, …"""
    return PAIR_RATE_BACKOFF_S[min(max(attempt, 0), len(PAIR_RATE_BACKOFF_S) - 1)]


def rule_for(code: int | None, http_status: int | None) -> ErrorRule:
    """The rule for a Graph error code; unknown codes are judged by the HTTP status.

    Args:
        code: Meta's `error.code` (None when the body carried none).
        http_status: the HTTP status, or None for errors reported by a status webhook.

    Returns:
        The table's rule; for unknown codes: 429 -> retry later (throttled), 5xx -> retry later,
        other statuses -> recipient-permanent.
    """
    if code is not None and (rule := ERROR_TABLE.get(code)) is not None:
        return rule
    if http_status is None:
        return _UNKNOWN_WEBHOOK
    if http_status == 429:
        return _UNKNOWN_429
    if http_status >= 500:
        return _UNKNOWN_5XX
    return _UNKNOWN_4XX


def classify(
    code: int | None,
    http_status: int | None,
    *,
    title: str = "",
    details: str | None = None,
    subcode: int | None = None,
    fbtrace_id: str | None = None,
    retry_after_s: float | None = None,
    raw: str | None = None,
) -> GraphError:
    """Classify one Graph error by its code.

    Any 429 also marks the error `throttled`, whatever the code (Meta's docs say to treat it so), except for
    the pair-rate limit and recipient-level codes, which must not slow everybody down.

    Args:
        code: Meta's `error.code`.
        http_status: the response's HTTP status (None for webhook errors).
        title: Meta's `message`/`title`, kept for logs.
        details: `error_data.details`.
        subcode: `error_subcode`, when present.
        fbtrace_id: Meta's trace id.
        retry_after_s: a wait Meta asked for (Retry-After or usage headers); overrides the table's default.
        raw: the body, kept (truncated) for codes the table does not know.

    Returns:
        The classified error, with the operator-facing meaning and fix.
    """
    rule = rule_for(code, http_status)
    known = code is not None and code in ERROR_TABLE
    throttled = rule.throttled or (
        http_status == 429 and not rule.pair_rate and rule.error_class is not ErrorClass.RECIPIENT_PERMANENT
    )
    code_text = f"code {code}" if code is not None else "no error code"
    if not known and http_status is not None:
        code_text += f", HTTP {http_status}"
    return GraphError(
        error_class=rule.error_class,
        code=code,
        http_status=http_status,
        meaning=f"{rule.meaning} ({code_text}): {rule.fix}",
        title=title,
        details=details,
        subcode=subcode,
        fbtrace_id=fbtrace_id,
        throttled=throttled,
        pair_rate=rule.pair_rate,
        opted_out=rule.opted_out,
        may_be_systemic=rule.may_be_systemic,
        retry_after_s=retry_after_s if retry_after_s is not None else rule.retry_after_s,
        raw=None if known else (raw[:RAW_BODY_LIMIT] if raw else None),
    )


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _details(error_data: Any) -> str | None:
    # error_data is an object for messaging errors but can be a plain string for template management.
    if isinstance(error_data, Mapping):
        details = error_data.get("details")
        return str(details) if details is not None else None
    if isinstance(error_data, str):
        return error_data
    return None


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """A wait Meta asked for: `Retry-After` seconds, or `estimated_time_to_regain_access` (minutes).

    Args:
        headers: the response headers (case-insensitive mapping).

    Returns:
        Seconds to wait, or None when no header says.
    """
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    usage = headers.get("x-business-use-case-usage")
    if usage:
        try:
            parsed = json.loads(usage)
        except ValueError:
            return None
        minutes = 0.0
        if isinstance(parsed, dict):
            for entries in parsed.values():
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict):
                        value = entry.get("estimated_time_to_regain_access")
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            minutes = max(minutes, float(value))
        if minutes > 0:
            return minutes * 60.0
    return None


def classify_response(http_status: int, body: bytes, headers: Mapping[str, str] | None = None) -> GraphError:
    """Classify a non-2xx Graph API response.

    A 5xx without a Graph error body (a proxy's 502/504, a crash mid-request) may have been processed:
    it is unknown-outcome. A 4xx without one (wrong URL, a proxy) is blast-fatal: every request would
    get the same answer.

    Args:
        http_status: the HTTP status.
        body: the raw response body.
        headers: the response headers, read for Retry-After and usage hints.

    Returns:
        The classified error.
    """
    retry_after = retry_after_from_headers(headers) if headers is not None else None
    text = body[:RAW_BODY_LIMIT].decode("utf-8", "replace")
    error: Any = None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
    if not isinstance(error, dict) or _int_or_none(error.get("code")) is None:
        return _no_graph_body(http_status, text, retry_after)
    return classify(
        _int_or_none(error.get("code")),
        http_status,
        title=str(error.get("message") or error.get("error_user_title") or ""),
        details=_details(error.get("error_data")),
        subcode=_int_or_none(error.get("error_subcode")),
        fbtrace_id=str(error["fbtrace_id"]) if error.get("fbtrace_id") is not None else None,
        retry_after_s=retry_after,
        raw=text,
    )


def _no_graph_body(http_status: int, text: str, retry_after: float | None) -> GraphError:
    if http_status == 429:
        return classify(None, 429, retry_after_s=retry_after, raw=text)
    if http_status >= 500:
        meaning = (
            f"Meta answered HTTP {http_status} without an error body: the message may have been sent; it is "
            "marked unknown and never re-sent automatically (check the status webhooks, or resend by hand)"
        )
        return GraphError(UNKNOWN, None, http_status, meaning, raw=text)
    meaning = (
        f"the Graph API answered HTTP {http_status} without a Graph error body: "
        "check WHATSAPP_API_URL and any proxy in between, then resume"
    )
    return GraphError(FATAL, None, http_status, meaning, raw=text)


def classify_webhook_error(error: Mapping[str, Any]) -> GraphError:
    """Classify one entry of `statuses[].errors[]` (or `value.errors[]`) from a status webhook.

    The message was not delivered, so unknown codes count as recipient-permanent.

    Args:
        error: `{"code": 131049, "title": "…", "message": "…", "error_data": {"details": "…"}, "href": …}`.

    Returns:
        The classified error (http_status None).
    """
    code = _int_or_none(error.get("code"))
    return classify(
        code,
        None,
        title=str(error.get("title") or error.get("message") or ""),
        details=_details(error.get("error_data")),
        raw=json.dumps(dict(error), ensure_ascii=True)[:RAW_BODY_LIMIT],
    )


def classify_status_errors(errors: Any) -> GraphError:
    """Classify the `errors` list of a `failed` status; the first entry decides.

    Args:
        errors: the `errors` value of the status (normally a list of one error object).

    Returns:
        The classified error; a failed status without errors is recipient-permanent with no code.
    """
    if isinstance(errors, list):
        for entry in errors:
            if isinstance(entry, Mapping):
                return classify_webhook_error(entry)
    return classify(None, None, raw=json.dumps(errors, ensure_ascii=True, default=str)[:RAW_BODY_LIMIT])


def network_error(*, sent: bool, what: str) -> GraphError:
    """An error with no answer from Meta.

    Args:
        sent: False when the request certainly did not leave (connect error, DNS, TLS, pool wait):
            retry later. True when it may have reached Meta (read timeout, connection lost after sending):
            unknown outcome, never re-sent silently.
        what: a short description of the failure (exception type and text, never headers).

    Returns:
        The classified error.
    """
    if not sent:
        meaning = f"could not reach the Graph API ({what}): nothing was sent; retried later"
        return GraphError(RETRY, None, None, meaning, retry_after_s=2.0)
    meaning = (
        f"no answer from the Graph API after the request was sent ({what}): the message may have gone out; "
        "it is marked unknown and never re-sent automatically (check the status webhooks or resend by hand)"
    )
    return GraphError(UNKNOWN, None, None, meaning)
