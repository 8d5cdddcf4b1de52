"""Two OS processes running the template sync loop at a 1 s interval sync once per interval, not once each."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shared.config import Settings
from shared.fake_graph.server import FakeGraph
from shared.models import Template
from shared.status import TemplateStatus

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [
    {
        "name": f"notice_{i}",
        "language": "en",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": f"Notice {i} for {{{{1}}}} today."}],
    }
    for i in range(3)
]


async def wait_until(check: object, timeout_s: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def test_two_processes_sync_once_per_interval(
    db: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = db
    async with FakeGraph(templates=TEMPLATES, seed=4) as fake:
        cfg = fake.config
        env = {
            **os.environ,
            "BLAST_ENV_FILE": os.devnull,
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.redis_url,
            "BLAST_REDIS_PREFIX": settings.BLAST_REDIS_PREFIX,
            "WHATSAPP_PROVIDER": "cloud",
            "WHATSAPP_API_URL": fake.url,
            "WHATSAPP_ACCESS_TOKEN": cfg.access_token,
            "WHATSAPP_BUSINESS_ACCOUNT_ID": cfg.business_account_id,
            "WHATSAPP_PHONE_NUMBER_ID": cfg.phone_number_id,
            "TEMPLATE_SYNC_INTERVAL": "1",
            "BLAST_HTTP_PORT": "0",
        }
        logs = [tmp_path / f"sync-{i}.log" for i in range(2)]
        procs = []
        for log_path in logs:
            with log_path.open("wb") as out:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "daemon.template_sync_loop",
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=out,
                    )
                )
        try:

            async def both_running() -> bool:
                for proc, log_path in zip(procs, logs, strict=True):
                    if proc.returncode is not None:
                        raise AssertionError(f"sync process exited early:\n{log_path.read_text()}")
                    if "template sync every" not in log_path.read_text():
                        return False
                return True

            await wait_until(both_running, 30, "both sync processes started")

            async def synced() -> bool:
                return await Template.all().count() == len(TEMPLATES)

            await wait_until(synced, 15, "the first sync")
            window_s = 4.0
            start_count, start_at = fake.counts["list_requests"], time.time()
            await asyncio.sleep(window_s)  # the measurement window itself, not a wait for a condition
            end_count, end_at = fake.counts["list_requests"], time.time()
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        made = end_count - start_count
        # Slots touched by the window: each may have at most one sync (one list request: one page here).
        slots = math.floor(end_at) - math.floor(start_at) + 1
        assert made <= slots, f"{made} list requests in {slots} one-second slots: more than one sync per slot"
        assert made >= slots - 2, (
            f"only {made} syncs in {slots} slots: the loop is not syncing every interval"
        )
        for proc, log_path in zip(procs, logs, strict=True):
            assert proc.returncode == 0, log_path.read_text()
            assert cfg.access_token not in log_path.read_text()
        assert {t.status for t in await Template.all()} == {TemplateStatus.APPROVED}
        assert "template sync stopped" in logs[0].read_text()
