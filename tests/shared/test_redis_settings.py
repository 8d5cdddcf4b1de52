"""Redis settings for production: ACL user, TLS and Sentinel, validated with one-line errors naming the variable;
and the one connection factory that honours them."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection
from redis.exceptions import AuthenticationError, ResponseError

from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.outage import OutageLog, is_outage
from shared.redis_conn import make_pool, redis_reason, target_text


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BLAST_ENV_FILE", str(tmp_path / "none.env"))


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def test_user_and_password_go_into_the_assembled_url() -> None:
    s = load_settings(REDIS_USERNAME="blast", REDIS_PASSWORD="p@ss", REDIS_HOST="10.0.0.6")
    assert s.redis_url == "redis://blast:p%40ss@10.0.0.6:6379/0"
    assert "p@ss" not in repr(s) and "p%40ss" not in str(s.masked())


def test_tls_by_flag_or_by_rediss_url(ca_file: str) -> None:
    s = load_settings(REDIS_TLS=True, REDIS_TLS_CA_FILE=ca_file)
    assert s.redis_tls and s.redis_url == "rediss://127.0.0.1:6379/0"
    assert load_settings(REDIS_URL="rediss://r.example.com:6380/0").redis_tls
    assert load_settings(REDIS_URL="redis://r.example.com:6380/0", REDIS_TLS=True).redis_url.startswith(
        "rediss://"
    )
    assert not load_settings().redis_tls
    pool = make_pool(s)
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == ca_file


def test_sentinels_are_parsed_and_the_pool_follows_the_master(ca_file: str) -> None:
    s = load_settings(
        REDIS_SENTINELS=" 10.0.0.1:26379, 10.0.0.2 ,[fd00::3]:26380",
        REDIS_SENTINEL_MASTER="blastmaster",
        REDIS_SENTINEL_PASSWORD="sentinel-secret",
        REDIS_USERNAME="blast",
        REDIS_PASSWORD="pw",
        REDIS_DB=2,
        REDIS_TLS=True,
        REDIS_TLS_CA_FILE=ca_file,
    )
    assert s.redis_sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("fd00::3", 26380)]
    pool = make_pool(s)
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "blastmaster"
    assert pool.connection_class is SentinelManagedSSLConnection
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == ("blast", "pw")
    assert pool.connection_kwargs["db"] == 2
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert sentinel["password"] == "sentinel-secret" and sentinel["ssl_ca_certs"] == ca_file
    assert target_text(s) == "sentinels 10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26380 master 'blastmaster'"
    assert "sentinel-secret" not in repr(s) and s.masked()["REDIS_SENTINEL_PASSWORD"] == "********"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"REDIS_SENTINELS": "10.0.0.1:26379,bad host"},
            "invalid setting REDIS_SENTINELS: 'bad host' is not host:port",
        ),
        (
            {"REDIS_SENTINELS": "10.0.0.1:99999"},
            "invalid setting REDIS_SENTINELS: '10.0.0.1:99999': port 99999",
        ),
        (
            {"REDIS_TLS_CA_FILE": "/nonexistent/ca.pem", "REDIS_TLS": "1"},
            "invalid setting REDIS_TLS_CA_FILE: no such file",
        ),
        (
            {"REDIS_TLS_CA_FILE": "CA"},
            "invalid setting REDIS_TLS_CA_FILE: set but TLS is off; set REDIS_TLS=1",
        ),
        (
            {"REDIS_TLS_CERT_FILE": "CA", "REDIS_TLS": "1"},
            "invalid setting REDIS_TLS_CERT_FILE: a client certificate",
        ),
        (
            {"REDIS_URL": "unix:///run/redis.sock", "REDIS_TLS": "1"},
            "invalid setting REDIS_TLS: TLS needs a TCP",
        ),
        (
            {"REDIS_URL": "unix:///run/redis.sock", "REDIS_SENTINELS": "h:1"},
            "invalid setting REDIS_SENTINELS:",
        ),
        ({"REDIS_SENTINEL_MASTER": ""}, "invalid setting REDIS_SENTINEL_MASTER"),
        ({"REDIS_TLS": "maybe"}, "invalid setting REDIS_TLS"),
    ],
)
def test_bad_redis_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, ca_file: str, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, ca_file if value == "CA" else value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)


def test_refusals_and_a_full_redis_name_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    wrong = AuthenticationError("invalid username-password pair or user is disabled.")
    assert "check REDIS_USERNAME and REDIS_PASSWORD" in redis_reason(wrong)
    full = ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    assert is_outage(full)
    outage = OutageLog(__import__("logging").getLogger("test"), "work queue")
    outage.failed(full)
    outage.failed(full)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "raise maxmemory or free memory" in lines[0] and "command not allowed" in lines[0]
