"""Redis as a managed service runs it: TLS with a private CA and an ACL user with only the rights blast needs.

A TLS-only redis-server of the test's own (a throwaway CA made with openssl), its default user off, one ACL user
with the rules docs/OPERATIONS.md gives: a blast runs end to end through it, `check` says which Redis (TLS yes,
master), and a wrong password, a wrong user or an untrusted certificate is refused with one line that says what
to fix.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.check import check_redis
from shared.fake_graph.server import FakeGraph
from shared.services import health
from shared.status import BlastStatus
from tests.daemon.conftest import assert_counters_exact, blast_of, make_blast, status_is, wait_for
from tests.redis_servers import ACL_RULES, Node, Pki, data_node, pki

pytestmark = pytest.mark.slow
__all__ = ["pki"]  # the fixture, imported for the tests below

USER, PASSWORD = "blast", "s3cret-acl-pw"


@pytest.fixture
def tls_redis(tmp_path: Path, pki: Pki, redis_prefix: str) -> Iterator[Node]:
    """A redis-server speaking only TLS, with the default user off and the ACL user `blast`."""
    node = data_node(tmp_path, "tls")
    port = node.port
    node.args[node.args.index("--port") + 1] = "0"
    rules = ACL_RULES.format(p=redis_prefix).split()
    node.args += [
        "--tls-port", str(port), "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
        "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no",
        "--user", "default", "off",
        "--user", USER, "on", f">{PASSWORD}", *rules,
    ]  # fmt: skip
    node.start()
    try:
        yield node
    finally:
        node.stop()


def _tls_settings(make: Any, node: Node, pki: Pki, **overrides: Any) -> Any:
    base: dict[str, Any] = {
        "REDIS_URL": None,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": node.port,
        "REDIS_TLS": True,
        "REDIS_TLS_CA_FILE": str(pki.ca),
        "REDIS_USERNAME": USER,
        "REDIS_PASSWORD": PASSWORD,
    }
    base.update(overrides)
    return make(**base)


async def test_a_blast_runs_through_tls_and_an_acl_user_with_only_the_documented_rights(
    db: Any, cloud_settings: Any, fake: FakeGraph, start_daemon: Any, tls_redis: Node, pki: Pki
) -> None:
    settings = _tls_settings(cloud_settings, tls_redis, pki)
    assert settings.redis_url.startswith("rediss://blast:")
    await start_daemon(settings)
    blast_id = await make_blast(settings, 300)
    await wait_for(lambda: status_is(blast_id, BlastStatus.COMPLETED), timeout_s=60, what="blast completed")
    per_phone = Counter(m.to for m in fake.received)
    assert len(per_phone) == 300 and set(per_phone.values()) == {1}
    assert (await blast_of(blast_id)).n_sent == 300
    await assert_counters_exact(blast_id)
    # The console's health check and `blast-daemon check` go through the same factory.
    assert await health.ping_redis(settings) is None
    findings = await check_redis(settings)
    assert findings[0].level == "ok", findings
    assert f"127.0.0.1:{tls_redis.port} (master, TLS yes)" in findings[0].text
    assert not [f for f in findings if f.level == "FAIL"], findings


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"REDIS_PASSWORD": "wrong"}, "Redis refused the login: check REDIS_USERNAME and REDIS_PASSWORD"),
        ({"REDIS_USERNAME": "nobody"}, "Redis refused the login: check REDIS_USERNAME and REDIS_PASSWORD"),
        (
            "other_ca",
            "Redis's TLS certificate is not trusted: set REDIS_TLS_CA_FILE to the CA that signed it",
        ),
        ({"REDIS_TLS": False, "REDIS_TLS_CA_FILE": None}, "cannot reach"),
    ],
    ids=["wrong-password", "wrong-user", "untrusted-certificate", "plain-to-tls"],
)
async def test_bad_credentials_or_certificate_are_refused_with_one_line(
    make_settings: Any,
    tls_redis: Node,
    pki: Pki,
    overrides: Any,
    expected: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if overrides == "other_ca":
        overrides = {"REDIS_TLS_CA_FILE": str(pki.other_ca)}
    settings = _tls_settings(make_settings, tls_redis, pki, **overrides)
    findings = await check_redis(settings)
    assert [f.level for f in findings] == ["FAIL"], findings
    line = findings[0].line()
    assert expected in line and "\n" not in line, line
    assert PASSWORD not in line and "wrong" not in line.replace("wrong-", "")
    reason = await health.ping_redis(settings)  # the console's banner
    assert reason is not None and "\n" not in reason
    if overrides.get("REDIS_TLS", True):
        assert expected in reason, reason


async def test_the_daemon_logs_a_refused_login_once_with_the_fix(
    db: Any,
    cloud_settings: Any,
    start_daemon: Any,
    tls_redis: Node,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = _tls_settings(cloud_settings, tls_redis, pki, REDIS_PASSWORD="wrong")
    await start_daemon(settings)

    async def logged() -> bool:
        return "Redis refused the login" in caplog.text

    await wait_for(logged, timeout_s=20, what="the refused login in the log")
    lines = [r.getMessage() for r in caplog.records if "Redis refused the login" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "check REDIS_USERNAME and REDIS_PASSWORD" in lines[0] and "wrong" not in lines[0]
