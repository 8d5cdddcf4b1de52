"""The all-in-one mode: the daemon runs inside the console's process and a blast goes out while the UI runs."""

from __future__ import annotations

import time

import pytest

from console.demo import DEMO_CSV, write_sandbox_templates
from console.tui import in_process_daemon
from shared.config import Settings
from shared.models import Blast
from shared.services import blasts
from shared.services.messaging import provider_session
from shared.services.template_sync import sync_templates
from shared.status import BlastStatus
from tests.console.conftest import AppFactory


@pytest.mark.slow
async def test_blast_goes_out_with_the_daemon_inside(
    make_settings: object, make_app: AppFactory, tmp_path: object, redis_client: object
) -> None:
    from shared.db import close_db, open_db

    assert callable(make_settings)
    settings: Settings = make_settings(
        BLAST_RATE_LIMIT=200, WHATSAPP_SANDBOX_DIR=str(tmp_path), WHATSAPP_SANDBOX_FAILURE_RATE=0
    )
    await open_db(settings)
    try:
        write_sandbox_templates(settings)
        async with provider_session(settings) as provider:
            await sync_templates(settings, provider)
        created = await blasts.create_blast(
            settings=settings, name="demo", template="order_update", language="en_US", recipients=DEMO_CSV
        )
        app = make_app()
        app.settings = settings
        async with in_process_daemon(settings), app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            deadline = time.monotonic() + 90
            status = BlastStatus.SCHEDULED
            while time.monotonic() < deadline:
                status = BlastStatus((await Blast.get(id=created.id)).status)
                if status == BlastStatus.COMPLETED:
                    break
                await pilot.pause(0.2)
            b = await Blast.get(id=created.id)
            assert status == BlastStatus.COMPLETED, b.counts()
            done = await Blast.get(id=created.id)
            assert done.n_pending == 0 and done.total == 200
    finally:
        await close_db()
