"""Scaling out on one machine: two daemon processes (distinct daemon ids) against one PostgreSQL database and one
Redis that has a password, a non-default port and database number 3. Both become healthy and see each other,
one blast is sent exactly once (whichever daemon takes its chunks), every key lives in database 3, and both stop
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shared.clock import utcnow
from shared.config import Settings, load_settings
from shared.db import database
from shared.events import close_redis_clients, publish
from shared.models import Blast, Recipient, Template
from shared.services import live
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.conftest import USE_POSTGRES, PrivateRedis, free_port, reset_database
from tests.ops.helpers import clean_env, daemon_command, running, write_env_files

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        not USE_POSTGRES,
        reason="several daemons need PostgreSQL (set BLAST_TEST_DATABASE_URL=postgres://…)",
    ),
]

REDIS_PASSWORD = "s3cret redis/pass"  # a space and a slash: the URL must quote it
REDIS_DB = 3
RECIPIENTS = 600
RATE = 100.0
CHUNK_LINE = re.compile(r"blast (\d+) chunk \S+: (\d+) requests \((\d+) sent")


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with tempfile.TemporaryDirectory(prefix="blast-redis-") as workdir:
        server = PrivateRedis(Path(workdir), password=REDIS_PASSWORD)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _wait_healthy(ports: list[int], procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, log.read_text()
        if all(_healthz(p) == 200 for p in ports):
            return
        time.sleep(0.2)
    pytest.fail("the daemons did not become healthy:\n" + "\n".join(log.read_text() for log in logs))


async def _send_one_blast(settings: Settings) -> tuple[int, int, list[str]]:
    """Create a blast of RECIPIENTS for hello_world; wait until it is COMPLETED. Returns (id, wamids, daemons)."""
    async with database(settings, migrate_schema=False):
        deadline = time.monotonic() + 20
        template = None
        while template is None and time.monotonic() < deadline:  # the daemons' first template sync
            template = await Template.filter(name="hello_world", status=TemplateStatus.APPROVED).first()
            await asyncio.sleep(0.1)
        assert template is not None, "hello_world was not synced from the sandbox"
        blast = await Blast.create(
            name="scale-out",
            template=template,
            status=BlastStatus.SCHEDULED,
            send_at=utcnow(),
            total=RECIPIENTS,
            n_pending=RECIPIENTS,
            created_by="test",
        )
        await Recipient.bulk_create(
            [
                Recipient(blast_id=blast.id, phone=f"+1555{i:07d}", params={}, row=i + 1)
                for i in range(RECIPIENTS)
            ]
        )
        assert await publish(settings, "scheduled", blast_id=blast.id)
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            alive = [d.id for d in await live.daemons(settings, client=client) if d.alive]
        finally:
            await client.aclose()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            current = await Blast.get(id=blast.id)
            if current.status == BlastStatus.COMPLETED:
                break
            await asyncio.sleep(0.2)
        current = await Blast.get(id=blast.id)
        assert current.status == BlastStatus.COMPLETED, (current.status, current.last_error)
        done = {RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.READ}
        assert await Recipient.filter(blast_id=blast.id, status__in=list(done)).count() == RECIPIENTS
        wamids = set(await Recipient.filter(blast_id=blast.id).values_list("wamid", flat=True))
        await close_redis_clients()
        return blast.id, len(wamids - {None}), alive


async def _keys_by_db(settings: Settings) -> dict[int, int]:
    out: dict[int, int] = {}
    for db in (0, REDIS_DB):
        url = re_db(settings.redis_url, db)
        client = aioredis.Redis.from_url(url)
        try:
            out[db] = len([k async for k in client.scan_iter(match=f"{settings.BLAST_REDIS_PREFIX}*")])
        finally:
            await client.aclose()
    return out


def re_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def test_two_daemons_send_one_blast_exactly_once_over_a_password_protected_redis(
    database_url: str,
    redis_server: PrivateRedis,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = {
        "DATABASE_URL": database_url,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_server.port),
        "REDIS_DB": str(REDIS_DB),
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "BLAST_REDIS_PREFIX": redis_prefix,
        "WHATSAPP_PROVIDER": "sandbox",
        "WHATSAPP_SANDBOX_DIR": str(tmp_path),
        "WHATSAPP_SANDBOX_FAILURE_RATE": "0",
        "BLAST_RATE_LIMIT": str(RATE),
    }
    env_file = write_env_files(tmp_path, operator, {"WHATSAPP_APP_SECRET": "scale-out-secret"})
    monkeypatch.setenv("BLAST_ENV_FILE", env_file)
    settings = load_settings()  # what the console on this host reads (the secrets file is the daemon's)
    assert settings.redis_url.endswith(f":{redis_server.port}/{REDIS_DB}")
    reset_database(settings)
    ports = [free_port(), free_port()]
    logs = [tmp_path / "daemon-a.log", tmp_path / "daemon-b.log"]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                running(daemon_command(), clean_env(env_file, BLAST_HTTP_PORT=str(port)), log)
            )
            for port, log in zip(ports, logs, strict=True)
        ]
        _wait_healthy(ports, procs, logs)
        blast_id, wamids, alive = asyncio.run(_send_one_blast(settings))
        assert len(alive) == 2 and len(set(alive)) == 2  # two daemons, two identities
        assert wamids == RECIPIENTS  # every recipient sent once, with its own message id
        keys = asyncio.run(_keys_by_db(settings))
        assert keys[REDIS_DB] > 0 and keys[0] == 0  # everything in database 3
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in zip(procs, logs, strict=True):
            assert proc.wait(30) == 0, log.read_text()
    requests_by_daemon = []
    for log in logs:
        text = log.read_text()
        assert REDIS_PASSWORD not in text
        requests_by_daemon.append(
            sum(int(m.group(2)) for m in CHUNK_LINE.finditer(text) if int(m.group(1)) == blast_id)
        )
    # No recipient was requested twice, whichever daemon took which chunk.
    assert sum(requests_by_daemon) == RECIPIENTS, requests_by_daemon
