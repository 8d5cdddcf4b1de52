"""An outage is logged with its cause: "SendTaskError: Cannot send task to the queue" alone does not say Redis went
away (shared.outage)."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from taskiq import SendTaskError

from shared.outage import OutageLog, describe, is_outage

log = logging.getLogger("tests.outage")


def _send_task_error() -> SendTaskError:
    try:
        try:
            raise RedisConnectionError("Connection closed by server.")
        except RedisConnectionError as exc:
            raise SendTaskError from exc
    except SendTaskError as exc:
        return exc


def test_the_first_warning_names_the_cause(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    outage = OutageLog(log, "scheduler")
    outage.failed(_send_task_error())
    outage.failed(_send_task_error())
    first, second = (r.getMessage() for r in caplog.records)
    assert first == (
        "scheduler: SendTaskError: Cannot send task to the queue (caused by ConnectionError: Connection closed by "
        "server.); retrying with backoff (logged once until it works again)"
    )
    assert "(caused by ConnectionError" in second


def test_an_exception_group_is_named_by_its_first_leaf() -> None:
    group = ExceptionGroup("unhandled errors in a TaskGroup", [_send_task_error(), ValueError("later")])
    assert describe(group).startswith(
        "SendTaskError: Cannot send task to the queue (caused by ConnectionError"
    )


def test_a_cause_repeating_the_message_is_named_by_its_type() -> None:
    try:
        raise RuntimeError("connection refused") from OSError("connection refused")
    except RuntimeError as exc:
        assert describe(exc) == "RuntimeError: connection refused (caused by OSError)"


def test_an_error_caused_by_an_outage_is_an_outage() -> None:
    assert is_outage(_send_task_error())
    assert not is_outage(SendTaskError())
    assert not is_outage(ValueError("a bug"))
