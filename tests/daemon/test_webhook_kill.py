"""A real `blast-daemon` killed with SIGKILL while webhooks pour in: every webhook it acknowledged is stored."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.fake_graph.server import FakeGraph
from shared.models import WebhookEvent
from shared.services.webhooks import sign
from tests.conftest import USE_POSTGRES, free_port
from tests.daemon.conftest import wait_for
from tests.daemon.webhook_helpers import status_payload

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    pytest.mark.skipif(not USE_POSTGRES, reason="a daemon process beside the test needs PostgreSQL"),
]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "kill-test-secret"  # signs this test's own webhooks only


async def test_sigkill_loses_no_acknowledged_webhook(
    db: Any, cloud_settings: Any, fake: FakeGraph, tmp_path: Path
) -> None:
    settings = cloud_settings()
    port = free_port()
    env = dict(os.environ)
    env.update(
        BLAST_ENV_FILE=os.devnull,
        DATABASE_URL=settings.DATABASE_URL,
        REDIS_URL=settings.redis_url,
        BLAST_REDIS_PREFIX=settings.BLAST_REDIS_PREFIX,
        WHATSAPP_PROVIDER="cloud",
        WHATSAPP_API_URL=settings.WHATSAPP_API_URL,
        WHATSAPP_ACCESS_TOKEN=fake.config.access_token,
        WHATSAPP_PHONE_NUMBER_ID=fake.config.phone_number_id,
        WHATSAPP_APP_SECRET=SECRET,
        BLAST_HTTP_PORT=str(port),
        BLAST_WEBHOOK_APPLIER="false",  # the stored rows stay as they are: what is counted below
        TEMPLATE_SYNC_INTERVAL="3600",
    )
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/webhook"
    acked: list[str] = []
    answered = 0
    try:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, timeout_s=30, what="the daemon's HTTP server")
            counter = iter(range(10**9))

            async def poster() -> None:
                nonlocal answered
                while proc.poll() is None:
                    wamid = f"wamid.kill{next(counter)}"
                    body = json.dumps(status_payload(wamid, "delivered")).encode()
                    headers = {"X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"}
                    try:
                        async with session.post(url, data=body, headers=headers) as resp:
                            await resp.read()
                            answered += 1
                            if resp.status == 200:
                                acked.append(wamid)
                    except (aiohttp.ClientError, OSError):
                        return

            posters = [asyncio.create_task(poster()) for _ in range(64)]
            while len(acked) < 500:
                await asyncio.sleep(0.001)
            proc.send_signal(signal.SIGKILL)  # mid-stream: POSTs are in flight, some rows mid-INSERT
            await asyncio.gather(*posters)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()
    bodies = [str(b) for b in await WebhookEvent.all().values_list("body", flat=True)]
    stored = {json.loads(b)["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] for b in bodies}
    lost = [w for w in acked if w not in stored]
    assert len(acked) >= 500
    assert lost == [], f"{len(lost)} acknowledged webhooks were not stored"
