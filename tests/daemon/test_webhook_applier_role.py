"""BLAST_WEBHOOK_APPLIER: a daemon told to leave stored webhook events to another daemon (a busy host's second
instance does the applying) does not apply them, and a daemon with the applier on applies what it stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.services import webhooks
from shared.status import RecipientStatus as R
from tests.daemon.conftest import wait_for
from tests.daemon.webhook_helpers import make_blast, recipient, status_payload


async def test_events_wait_for_a_daemon_with_the_applier_on(
    db: Any, make_settings: Any, start_daemon: Any, redis_client: Any
) -> None:
    _, (row,) = await make_blast([("+6281234567890", R.SENT, "wamid.role")])
    # What the HTTP handler of the daemon that only takes webhooks stores.
    await webhooks.store_event(json.dumps(status_payload("wamid.role", "delivered")))

    await start_daemon(make_settings(BLAST_WEBHOOK_APPLIER=False))
    await asyncio.sleep(1.5)  # the applier polls every 50 ms: many times over, had it been running
    assert await webhooks.backlog() == 1
    assert (await recipient(row.id)).status == R.SENT

    await start_daemon(make_settings())

    async def delivered() -> bool:
        return (await recipient(row.id)).status == R.DELIVERED

    await wait_for(delivered, timeout_s=20, what="the second daemon to apply the stored status")
    assert await webhooks.backlog() == 0
