"""The senders service: each number's rate from its Meta level and the operator's cap, the
`phone_number_quality_update` webhook as the fake emits it, and the fake's several numbers."""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeConfig
from shared.models import Sender
from shared.services import senders

N1 = "200000000000001"


async def test_throughput_upgrade_webhook_raises_the_numbers_rate(db: Any, make_settings: Any) -> None:
    settings = make_settings(WHATSAPP_PROVIDER="cloud", BLAST_RATE_LIMIT=500.0)
    config = FakeConfig(webhook_statuses=False, extra_numbers={N1: "STANDARD"})
    async with FakeGraph(config) as fake:
        await Sender.create(
            phone_number_id=N1,
            waba_id=config.business_account_id,
            token_env="T",
            display_phone="15550783881"[:-4] + N1[-4:],
        )
        assert (await senders.show_sender(settings, N1)).rate == 80.0  # Meta's default level
        value = fake.number_update(N1)
        assert value["event"] == "THROUGHPUT_UPGRADE"
        await senders.apply_number_update(value)
        info = await senders.show_sender(settings, N1)
        assert info.throughput_level == "HIGH" and info.rate == 1000.0
        assert info.messaging_limit_tier == config.messaging_limit
        # The fake's own view of the number moved too.
        async with aiohttp.ClientSession() as http:
            got = await (
                await http.get(
                    f"{fake.url}/{N1}",
                    params={"fields": "throughput,whatsapp_business_manager_messaging_limit"},
                    headers={"Authorization": f"Bearer {config.access_token}"},
                )
            ).json()
        assert got["throughput"] == {"level": "HIGH"} and got["id"] == N1
        # Named only by its display number (older payloads), a quality change lands on the same sender.
        await senders.apply_number_update(
            {"display_phone_number": info.display_phone or "x", "event": "FLAGGED"}
        )
        assert (await senders.show_sender(settings, N1)).quality_rating == "RED"
    # The operator's cap wins below the level; the default sender keeps BLAST_RATE_LIMIT.
    await Sender.filter(phone_number_id=N1).update(rate_cap=300.0)
    assert (await senders.show_sender(settings, N1)).rate == 300.0


async def test_an_update_for_an_unknown_number_changes_nothing(db: Any, make_settings: Any) -> None:
    settings = make_settings(WHATSAPP_PROVIDER="cloud", WHATSAPP_PHONE_NUMBER_ID="106540352242922")
    await senders.apply_number_update({"phone_number_id": "999", "event": "THROUGHPUT_UPGRADE"})
    [default] = await senders.list_senders(settings)
    assert (
        default.is_default and default.throughput_level is None and default.rate == settings.BLAST_RATE_LIMIT
    )
