"""`blast-daemon check` against the fake Graph API, the test database and Redis: one line per finding, FAIL lines
for a rejected token, a number of another account, a missing webhook subscription, secrets in a readable file;
the sandbox announced loudly; secrets never printed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daemon.__main__ import cli
from daemon.check import Finding, check_files, run_checks
from shared import metrics
from shared.config import Settings, get_settings
from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeConfig
from tests.conftest import reset_database
from tests.ops.helpers import clean_env, daemon_command, write_env_files


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(FakeConfig(webhook_statuses=False), seed=3) as server:
        yield server


def _cloud(make_settings: Any, fake: FakeGraph, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "WHATSAPP_PROVIDER": "cloud",
        "WHATSAPP_API_URL": fake.url,
        "WHATSAPP_ACCESS_TOKEN": fake.config.access_token,
        "WHATSAPP_PHONE_NUMBER_ID": fake.config.phone_number_id,
        "WHATSAPP_BUSINESS_ACCOUNT_ID": fake.config.business_account_id,
        "WHATSAPP_APP_SECRET": "check-app-secret",
        "WHATSAPP_VERIFY_TOKEN": "check-verify",
        "BLAST_RATE_LIMIT": 50.0,
    }
    base.update(overrides)
    result = make_settings(**base)
    assert isinstance(result, Settings)
    return result


def _failed(findings: list[Finding]) -> list[str]:
    return [f.line() for f in findings if f.level == "FAIL"]


async def test_a_healthy_cloud_deployment_passes(make_settings: Any, fake: FakeGraph, db: Settings) -> None:
    findings = await run_checks(_cloud(make_settings, fake))
    assert _failed(findings) == []
    text = "\n".join(f.line() for f in findings)
    assert "ok   database:" in text and "ok   redis:" in text
    assert "quality GREEN, messaging limit TIER_2K, throughput STANDARD" in text
    assert "phone number id belongs to business account" in text
    assert "sends webhooks to app Blast Fake App" in text
    assert fake.config.access_token not in text and "check-app-secret" not in text


async def test_each_meta_problem_is_one_fail_line(make_settings: Any, fake: FakeGraph, db: Settings) -> None:
    rejected_before = metrics.REGISTRY.get_sample_value("blast_token_rejected_total") or 0.0
    bad_token = await run_checks(_cloud(make_settings, fake, WHATSAPP_ACCESS_TOKEN="expired-token"))
    # The alert rule "token rejected" watches this counter.
    assert metrics.REGISTRY.get_sample_value("blast_token_rejected_total") == rejected_before + 1
    assert [line for line in _failed(bad_token) if "meta" in line] == [
        "FAIL meta: the access token was rejected (code 190): put a valid System User token in "
        "WHATSAPP_ACCESS_TOKEN, then `systemctl reload blast-daemon`"
    ]
    assert all("expired-token" not in f.line() for f in bad_token)

    other_waba = await run_checks(_cloud(make_settings, fake, WHATSAPP_BUSINESS_ACCOUNT_ID="999"))
    assert any("does not exist" in line or "999" in line for line in _failed(other_waba))

    fake.configure(webhook_subscribed=False, quality_rating="RED", phone_number_id="42")
    findings = await run_checks(
        _cloud(make_settings, fake, WHATSAPP_PHONE_NUMBER_ID="42", BLAST_RATE_LIMIT=200)
    )
    lines = _failed(findings)
    assert any(line.startswith("FAIL webhook: no app is subscribed") for line in lines)
    assert any("quality rating RED" in line for line in lines)
    assert any(f.level == "warn" and "130429" in f.text for f in findings)
    fake.configure(phone_number_id="106540352242922")
    findings = await run_checks(_cloud(make_settings, fake, WHATSAPP_PHONE_NUMBER_ID="106540352242922"))
    assert any("FAIL webhook" in line for line in _failed(findings))


async def test_missing_secrets_and_the_sandbox(make_settings: Any, db: Settings) -> None:
    missing = await run_checks(make_settings(WHATSAPP_PROVIDER="cloud"))
    lines = _failed(missing)
    assert (
        "FAIL config: WHATSAPP_ACCESS_TOKEN (for sending and template sync) is not set: add it to /etc/blast/secrets.env"
        in lines
    )
    assert any(line.startswith("FAIL meta: not checked") for line in lines)
    sandbox = await run_checks(make_settings(WHATSAPP_PROVIDER="sandbox"))
    assert _failed(sandbox) == []
    assert any("SIMULATED, NOTHING IS SENT TO WHATSAPP" in f.line() for f in sandbox)


def test_secrets_in_a_group_readable_file_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write_env_files(
        tmp_path,
        {"DATABASE_URL": "sqlite:///x.db", "WHATSAPP_ACCESS_TOKEN": "leaked"},
        {"WHATSAPP_APP_SECRET": "s"},
    )
    monkeypatch.setenv("BLAST_ENV_FILE", env_file)
    lines = [f.line() for f in check_files()]
    assert any(
        line.startswith(
            f"FAIL files: {tmp_path / 'blast.env'} holds WHATSAPP_ACCESS_TOKEN but its mode is 0640"
        )
        for line in lines
    )
    assert len([line for line in lines if line.startswith("FAIL")]) == 1  # the 0600 file is fine
    assert all("leaked" not in line for line in lines)


def test_the_command_exits_non_zero_on_problems(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_database(settings)
    operator = {
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": settings.redis_url,
        "BLAST_REDIS_PREFIX": settings.BLAST_REDIS_PREFIX,
        "WHATSAPP_PROVIDER": "cloud",
    }
    env_file = write_env_files(tmp_path, operator, {"WHATSAPP_APP_SECRET": "never-printed"})
    result = subprocess.run(
        [*daemon_command(), "check"], env=clean_env(env_file), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL config: WHATSAPP_ACCESS_TOKEN" in result.stdout
    assert "ok   database:" in result.stdout and "ok   redis:" in result.stdout
    assert "never-printed" not in result.stdout + result.stderr
    monkeypatch.setenv("BLAST_ENV_FILE", os.devnull)
    monkeypatch.setenv("BLAST_RATE_LIMIT", "-1")
    get_settings.cache_clear()
    bad = CliRunner().invoke(cli, ["check"])
    get_settings.cache_clear()
    assert bad.exit_code == 2
    assert bad.output.startswith("FAIL config: invalid setting BLAST_RATE_LIMIT")
