"""Tests of the WhatsApp error classification table: codes, not HTTP statuses, decide."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from shared.whatsapp import ErrorClass, GraphApiError
from shared.whatsapp.errors import (
    ERROR_TABLE,
    classify,
    classify_response,
    classify_status_errors,
    classify_webhook_error,
    network_error,
    pair_rate_backoff_s,
    retry_after_from_headers,
    rule_for,
)

RETRY = ErrorClass.RETRY_LATER
PERM = ErrorClass.RECIPIENT_PERMANENT
FATAL = ErrorClass.BLAST_FATAL
UNKNOWN = ErrorClass.UNKNOWN_OUTCOME


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (130429, RETRY),
        (131056, RETRY),
        (4, RETRY),
        (80007, RETRY),
        (131000, RETRY),
        (131016, RETRY),
        (133004, RETRY),
        (131057, RETRY),
        (131026, PERM),
        (131049, PERM),
        (131050, PERM),
        (130472, PERM),
        (131021, PERM),
        (100, PERM),
        (0, FATAL),
        (190, FATAL),
        (10, FATAL),
        (3, FATAL),
        (250, FATAL),
        (368, FATAL),
        (131031, FATAL),
        (131042, FATAL),
        (131048, FATAL),
        (132000, FATAL),
        (132001, FATAL),
        (132015, FATAL),
        (132016, FATAL),
        (131063, FATAL),
    ],
)
def test_codes_map_to_their_class(code: int, expected: ErrorClass) -> None:
    assert classify(code, 400).error_class is expected
    assert rule_for(code, None).error_class is expected


def test_every_rule_has_a_meaning_and_a_fix() -> None:
    for code, rule in ERROR_TABLE.items():
        assert rule.meaning and rule.fix, code
        text = classify(code, 400).meaning
        assert f"(code {code})" in text
        assert text.endswith(rule.fix)


def test_token_error_tells_the_operator_what_to_do() -> None:
    error = classify(190, 401)
    assert error.error_class is FATAL
    assert "access token rejected by Meta (expired or revoked) (code 190)" in error.meaning
    assert "renew WHATSAPP_ACCESS_TOKEN" in error.meaning
    assert str(error) == error.meaning


@pytest.mark.parametrize("status", [400, 429])
def test_throughput_limit_is_throttling_whatever_the_status(status: int) -> None:
    error = classify(130429, status)
    assert error.error_class is RETRY
    assert error.throttled and not error.pair_rate
    assert error.retry_after_s == 1.0


@pytest.mark.parametrize("status", [400, 429])
def test_pair_rate_waits_for_one_recipient_only(status: int) -> None:
    error = classify(131056, status)
    assert error.error_class is RETRY
    assert error.pair_rate
    assert not error.throttled  # the other recipients go on at full speed


def test_app_and_waba_limits_throttle() -> None:
    assert classify(4, 429).throttled
    assert classify(80007, 400).throttled


def test_marketing_cap_at_429_fails_the_recipient_without_slowing_everybody() -> None:
    error = classify(131049, 429)
    assert error.error_class is PERM
    assert not error.throttled


def test_opt_out_flag() -> None:
    assert classify(131050, 400).opted_out
    assert not classify(131026, 400).opted_out


def test_data_errors_may_be_systemic() -> None:
    assert classify(100, 400).may_be_systemic
    assert classify(132012, 400).may_be_systemic
    assert not classify(131026, 400).may_be_systemic


def test_unknown_codes_are_judged_by_status() -> None:
    four = classify(999_999, 400, raw='{"error":{"code":999999}}')
    assert four.error_class is PERM
    assert four.raw == '{"error":{"code":999999}}'
    assert "HTTP 400" in four.meaning
    assert classify(999_999, 503).error_class is RETRY
    throttled = classify(999_999, 429)
    assert throttled.error_class is RETRY and throttled.throttled
    assert classify(999_999, None).error_class is PERM  # a failed webhook: the message did not arrive


def test_known_codes_do_not_keep_the_raw_body() -> None:
    assert classify(131026, 400, raw="{}").raw is None


def test_pair_rate_backoff() -> None:
    assert [pair_rate_backoff_s(n) for n in range(6)] == [1.0, 4.0, 16.0, 64.0, 64.0, 64.0]
    assert pair_rate_backoff_s(-1) == 1.0


def _body(code: int, **extra: object) -> bytes:
    error: dict[str, object] = {
        "message": f"(#{code}) something",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": "longer cause"},
        "fbtrace_id": "A4O5a8RAgePwbcGSu",
    }
    error.update(extra)
    return json.dumps({"error": error}).encode()


def test_classify_response_reads_the_graph_envelope() -> None:
    error = classify_response(400, _body(131056, error_subcode=2494055, is_transient=False))
    assert error.code == 131056 and error.http_status == 400
    assert error.title == "(#131056) something"
    assert error.details == "longer cause"
    assert error.subcode == 2494055
    assert error.fbtrace_id == "A4O5a8RAgePwbcGSu"
    assert error.pair_rate


def test_classify_response_accepts_string_error_data() -> None:
    body = json.dumps({"error": {"message": "bad", "code": 100, "error_data": "plain text"}}).encode()
    assert classify_response(400, body).details == "plain text"


def test_5xx_without_graph_body_may_have_been_sent() -> None:
    error = classify_response(502, b"<html>Bad Gateway</html>")
    assert error.error_class is UNKNOWN
    assert error.code is None
    assert "may have been sent" in error.meaning


def test_5xx_with_graph_body_is_retried() -> None:
    assert classify_response(500, _body(131000)).error_class is RETRY
    assert classify_response(503, _body(131016)).error_class is RETRY


def test_4xx_without_graph_body_is_a_configuration_problem() -> None:
    error = classify_response(404, b"Not Found")
    assert error.error_class is FATAL
    assert "WHATSAPP_API_URL" in error.meaning


def test_429_without_body_throttles() -> None:
    error = classify_response(429, b"")
    assert error.error_class is RETRY and error.throttled


def test_retry_after_headers() -> None:
    assert retry_after_from_headers(CIMultiDict({"Retry-After": "7"})) == 7.0
    usage = {"1234": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": 3}]}
    headers = CIMultiDict({"x-business-use-case-usage": json.dumps(usage)})
    assert retry_after_from_headers(headers) == 180.0
    assert classify_response(429, _body(80007), headers).retry_after_s == 180.0
    assert retry_after_from_headers(CIMultiDict({"x-business-use-case-usage": "not json"})) is None
    assert retry_after_from_headers(CIMultiDict()) is None


def test_webhook_errors() -> None:
    status = {
        "id": "wamid.HBgM",
        "status": "failed",
        "timestamp": "1750263780",
        "recipient_id": "16505550000",
        "errors": [
            {
                "code": 131049,
                "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                "message": "…",
                "error_data": {"details": "…"},
                "href": "https://developers.facebook.com/",
            }
        ],
    }
    error = classify_status_errors(status["errors"])
    assert error.error_class is PERM
    assert error.code == 131049 and error.http_status is None
    assert error.title.startswith("This message was not delivered")
    opted = classify_webhook_error({"code": 131050, "title": "stopped marketing"})
    assert opted.opted_out and opted.error_class is PERM
    assert classify_webhook_error({"code": "131026"}).code == 131026
    assert classify_status_errors(None).error_class is PERM
    assert classify_status_errors([]).code is None


def test_network_errors() -> None:
    before = network_error(sent=False, what="ClientConnectorError: refused")
    assert before.error_class is RETRY and "nothing was sent" in before.meaning
    after = network_error(sent=True, what="SocketTimeoutError: read timeout")
    assert after.error_class is UNKNOWN and "never re-sent automatically" in after.meaning


def test_graph_api_error_message_names_the_action_and_metas_details() -> None:
    error = classify_response(400, _body(100))
    exc = GraphApiError(error, context="submitting template promo (en)")
    assert str(exc).startswith("submitting template promo (en) failed: invalid parameter")
    assert "Meta says: longer cause" in str(exc)
    assert exc.title == "WhatsApp"
