"""Settings: defaults, REDIS_URL precedence, one-line errors naming the variable, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings, load_settings, mask_url
from shared.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BLAST_ENV_FILE", str(tmp_path / "none.env"))


def test_defaults_match_the_original_system() -> None:
    s = load_settings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.WHATSAPP_PROVIDER == "cloud"
    assert s.WHATSAPP_API_URL == "https://graph.facebook.com/v24.0"
    assert s.BLAST_RATE_LIMIT == 80
    assert s.TEMPLATE_SYNC_INTERVAL == 1800
    assert s.BLAST_MISSED_CUTOFF == 24 * 3600
    assert (s.BLAST_HTTP_HOST, s.BLAST_HTTP_PORT) == ("127.0.0.1", 8080)
    assert s.BLAST_TIMEZONE == "UTC"
    assert s.BLAST_DEFAULT_REGION is None


def test_redis_parts_and_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "10.0.0.5")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_DB", "3")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word")
    assert load_settings().redis_url == "redis://:p%40ss%2Fword@10.0.0.5:6380/3"
    monkeypatch.setenv("REDIS_URL", "redis://other:6379/1")
    assert load_settings().redis_url == "redis://other:6379/1"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REDIS_PORT", "http", "invalid setting REDIS_PORT"),
        ("REDIS_PORT", "70000", "invalid setting REDIS_PORT"),
        ("BLAST_RATE_LIMIT", "0", "invalid setting BLAST_RATE_LIMIT"),
        ("WHATSAPP_PROVIDER", "twilio", "invalid setting WHATSAPP_PROVIDER"),
        ("BLAST_TIMEZONE", "Mars/Base", "invalid setting BLAST_TIMEZONE: unknown time zone 'Mars/Base'"),
        ("BLAST_DEFAULT_REGION", "XX", "invalid setting BLAST_DEFAULT_REGION: unknown region 'XX'"),
        (
            "DATABASE_URL",
            "mysql://x",
            "invalid setting DATABASE_URL: must start with sqlite:// or postgres://",
        ),
        ("REDIS_URL", "localhost:6379", "invalid setting REDIS_URL"),
        ("WHATSAPP_API_URL", "graph.facebook.com", "invalid setting WHATSAPP_API_URL"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_env_files_are_read_in_order_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared_file = tmp_path / "blast.env"
    shared_file.write_text("BLAST_TIMEZONE=Asia/Jakarta\nBLAST_RATE_LIMIT=20\n")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("WHATSAPP_ACCESS_TOKEN=tok-123\nBLAST_RATE_LIMIT=30\n")
    monkeypatch.setenv("BLAST_ENV_FILE", f"{shared_file}:{secrets}:{tmp_path / 'missing.env'}")
    s = load_settings()
    assert s.BLAST_TIMEZONE == "Asia/Jakarta"
    assert s.BLAST_RATE_LIMIT == 30
    assert s.WHATSAPP_ACCESS_TOKEN is not None
    monkeypatch.setenv("BLAST_RATE_LIMIT", "40")
    assert load_settings().BLAST_RATE_LIMIT == 40


def test_unreadable_secrets_file_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("WHATSAPP_ACCESS_TOKEN=tok-123\n")
    secrets.chmod(0)
    monkeypatch.setenv("BLAST_ENV_FILE", str(secrets))
    import os

    if os.access(secrets, os.R_OK):  # root reads anything: the check is then about other users
        pytest.skip("running as root: every file is readable")
    assert load_settings().WHATSAPP_ACCESS_TOKEN is None


def test_secrets_never_appear_in_dump_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "EAAG-secret-token")
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "app-secret-xyz")
    monkeypatch.setenv("REDIS_PASSWORD", "redis-pw-123")
    monkeypatch.setenv("DATABASE_URL", "postgres://blast:db-pw-456@db/blast")
    s = load_settings()
    text = repr(s) + str(s.masked()) + str(s)
    for secret in ("EAAG-secret-token", "app-secret-xyz", "redis-pw-123", "db-pw-456"):
        assert secret not in text
    assert s.masked()["DATABASE_URL"] == "postgres://blast:****@db/blast"
    monkeypatch.setenv("REDIS_PORT", "bad")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "redis-pw-123" not in str(info.value)


def test_postgresql_scheme_is_accepted() -> None:
    assert load_settings(DATABASE_URL="postgresql://u@h/db").DATABASE_URL == "postgres://u@h/db"


def test_mask_url() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:****@h:1/0"
    assert mask_url("sqlite:///var/lib/blast/blast.db") == "sqlite:///var/lib/blast/blast.db"


def test_prefixed_keys() -> None:
    s = load_settings(BLAST_REDIS_PREFIX="prod")
    assert s.key("events") == "prod:events"
    assert s.key("sent", 42, 7) == "prod:sent:42:7"
