"""SIGHUP's reload: a rotated token, app secret and verify token are used from the next request on, with no
restart and nothing in flight dropped; a broken env file changes nothing; other changes ask for a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.reload import reload_credentials
from shared.config import Settings, load_settings
from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeConfig
from shared.whatsapp.cloud import CloudClient
from tests.ops.helpers import write_env_files


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(
        FakeConfig(webhook_statuses=False, mps=None, pair_rate_per_s=None), seed=5
    ) as server:
        yield server


def _files(tmp_path: Path, fake: FakeGraph, token: str, **extra: str) -> str:
    operator = {
        "DATABASE_URL": f"sqlite://{tmp_path / 'blast.db'}",
        "WHATSAPP_PROVIDER": "cloud",
        "WHATSAPP_API_URL": fake.url,
        "WHATSAPP_PHONE_NUMBER_ID": fake.config.phone_number_id,
        "WHATSAPP_BUSINESS_ACCOUNT_ID": fake.config.business_account_id,
    }
    secrets = {"WHATSAPP_ACCESS_TOKEN": token, "WHATSAPP_APP_SECRET": "secret-1", **extra}
    return write_env_files(tmp_path, operator, secrets)


async def test_a_rotated_token_is_used_without_a_restart(
    fake: FakeGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_token = fake.config.access_token
    monkeypatch.setenv("BLAST_ENV_FILE", _files(tmp_path, fake, old_token))
    settings = load_settings()
    async with CloudClient.from_settings(settings) as client:
        assert (await client.phone_number_info()).quality_rating == "GREEN"
        # A request in flight when the token rotates keeps its header and completes.
        fake.configure(latency_ms=300.0)
        in_flight = asyncio.create_task(client.phone_number_info())
        await asyncio.sleep(0.1)
        fake.configure(access_token="rotated-token", latency_ms=0.0)  # Meta accepts only the new one now
        _files(tmp_path, fake, "rotated-token", WHATSAPP_VERIFY_TOKEN="verify-2")
        report = reload_credentials(settings, client)
        assert report.applied == ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_VERIFY_TOKEN"]
        assert report.need_restart == [] and report.error is None
        # The old token had been accepted before the rotation (the fake checks it first, then waits).
        assert (await in_flight).id == fake.config.phone_number_id
        assert (await client.phone_number_info()).id == fake.config.phone_number_id
        assert settings.WHATSAPP_VERIFY_TOKEN is not None
        assert settings.WHATSAPP_VERIFY_TOKEN.get_secret_value() == "verify-2"
        assert "rotated-token" not in repr(client) and "rotated-token" not in repr(settings)


async def test_a_broken_file_changes_nothing_and_other_changes_need_a_restart(
    fake: FakeGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLAST_ENV_FILE", _files(tmp_path, fake, fake.config.access_token))
    settings: Settings = load_settings()
    client = CloudClient.from_settings(settings)
    _files(tmp_path, fake, "new-token", BLAST_RATE_LIMIT="-5")
    broken = reload_credentials(settings, client)
    assert broken.applied == [] and broken.error is not None and "BLAST_RATE_LIMIT" in broken.error
    assert settings.WHATSAPP_ACCESS_TOKEN is not None
    assert settings.WHATSAPP_ACCESS_TOKEN.get_secret_value() == fake.config.access_token
    _files(tmp_path, fake, fake.config.access_token, BLAST_RATE_LIMIT="40", WHATSAPP_APP_SECRET="secret-2")
    report = reload_credentials(settings, client)
    assert report.applied == ["WHATSAPP_APP_SECRET"]
    assert report.need_restart == ["BLAST_RATE_LIMIT"]
    assert settings.BLAST_RATE_LIMIT != 40
    await client.close()
