"""Provides the demo's seed: the sandbox's templates (one still SUBMITTED, approved a minute later by the
simulated Meta), a synced template list, a first blast from the demo CSV that starts ~20 s later, and a
local-time blast whose three zones are due one minute apart.

Run by scripts/demo before `blast-console --with-daemon`; running it again changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.config import Settings, load_settings
from shared.db import database
from shared.events import close_redis_clients
from shared.models import PriceCard
from shared.services import blasts, rate_card_import, senders
from shared.services.messaging import provider_session
from shared.services.template_sync import sync_templates
from shared.text import plural
from shared.whatsapp.sandbox import DEMO_TEMPLATES, TEMPLATES_FILE, sandbox_dir

DEMO_CSV = Path(__file__).parent / "demo_data" / "recipients.csv"
#: The demo's second (simulated) sender number: the demo blast is spread over two numbers.
DEMO_SECOND_NUMBER = "106540352240002"
#: Nine recipients in three zones one minute apart (UTC+07:00, +06:59, +06:58: WIB, WITA and WIT are an hour
#: apart, too long to watch), for the local-time example.
DEMO_LOCAL_CSV = Path(__file__).parent / "demo_data" / "recipients_local.csv"
DEMO_LOCAL_KEY = "demo-local-time"
#: The template that is still in review when the demo starts.
PENDING_TEMPLATE: dict[str, Any] = {
    "name": "welcome_offer",
    "language": "en_US",
    "status": "PENDING",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Welcome {{1}}! Your first order ships free with code {{2}}.",
            "example": {"body_text": [["Ada", "FREESHIP"]]},
        },
    ],
}
#: The SAMPLE rate card of the tests (invented IDR prices, not Meta's), imported for the demo's cost estimates.
SAMPLE_CARD_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "pricing"
APPROVE_AFTER_S = 60.0
DEMO_KEY = "demo-order-updates"


def write_sandbox_templates(settings: Settings, *, now: float | None = None) -> Path:
    """Write the simulated Meta's template list (once): the demo templates plus one PENDING for a minute."""
    path = sandbox_dir(settings) / TEMPLATES_FILE
    if path.exists():
        return path
    now = time.time() if now is None else now
    items: list[dict[str, Any]] = []
    for i, t in enumerate([*DEMO_TEMPLATES, PENDING_TEMPLATE], start=1):
        item = {**t, "id": f"9000000000{i:04d}"}
        if t is PENDING_TEMPLATE:
            item["review_at"] = now + APPROVE_AFTER_S
            item["review_to"] = "APPROVED"
        items.append(item)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"templates": items}, indent=1), encoding="utf-8")
    return path


async def import_sample_card() -> str:
    """Import the SAMPLE rate card when the demo has none (and the repository's tests/data is there)."""
    rates = SAMPLE_CARD_DIR / "sample-rates-idr.csv"
    if await PriceCard.exists() or not rates.exists():
        return ""
    await rate_card_import.import_card(
        rates=rates,
        markets=SAMPLE_CARD_DIR / "sample-markets.csv",
        tiers=SAMPLE_CARD_DIR / "sample-tiers-idr.csv",
        currency="IDR",
        effective="2000-01-01",
        actor="demo",
    )
    return "; the SAMPLE rate card (invented IDR prices, not Meta's) imported"


async def demo_pool(settings: Settings) -> list[str]:
    """The sandbox's number and a second simulated one of the same WABA: the demo blast sends from both."""
    await senders.ensure_default(settings)
    [default] = [s for s in await senders.list_senders(settings) if s.is_default]
    if not any(s.phone_number_id == DEMO_SECOND_NUMBER for s in await senders.list_senders(settings)):
        await senders.add_sender(
            settings,
            phone_number_id=DEMO_SECOND_NUMBER,
            waba_id=default.waba_id,
            token_env="WHATSAPP_ACCESS_TOKEN",  # noqa: S106 (a setting's name; the sandbox needs no token)
            name="demo second number",
            actor="demo",
        )
    return [default.phone_number_id, DEMO_SECOND_NUMBER]


async def seed(settings: Settings) -> str:
    """Seed the open database for the demo; returns what was done, in one line."""
    write_sandbox_templates(settings)
    card = await import_sample_card()
    async with provider_session(settings) as provider:
        report = await sync_templates(settings, provider, actor="demo")
    pool = await demo_pool(settings)
    result = await blasts.create_blast(
        settings=settings,
        name="Demo: order updates",
        template="order_update",
        language="en_US",
        recipients=DEMO_CSV,
        send_at="+20s",
        client_key=DEMO_KEY,
        actor="demo",
        senders=pool,
    )
    if result.existing:
        return f"demo already seeded (blast {result.id} is {result.status.value}){card}"
    local = await seed_local_time(settings)
    return (
        f"{plural(report.listed, 'template')} synced; blast {result.id} scheduled in 20 s from 2 numbers with "
        f"{plural(result.recipients, 'recipient')} ({result.rejected_total} rejected row to show how rejects look){card}"
        f"; local-time blast {local.id}: 3 zones due one minute apart from about 2 min on"
    )


async def seed_local_time(settings: Settings, *, now: datetime | None = None) -> blasts.CreateResult:
    """The local-time example: the same wall-clock time in three zones one minute apart, the first ~2 min ahead."""
    now = now or datetime.now(UTC)
    # The wall-clock time in UTC+07:00 (the earliest zone) a minute or two from now, on a whole minute.
    wall = (now + timedelta(hours=7, minutes=2)).replace(tzinfo=None, second=0, microsecond=0)
    return await blasts.create_blast(
        settings=settings,
        name="Demo: 09:00 local time in three zones",
        template="order_update",
        language="en_US",
        recipients=DEMO_LOCAL_CSV,
        send_at=wall.strftime("%Y-%m-%d %H:%M"),
        local_time=True,
        client_key=DEMO_LOCAL_KEY,
        actor="demo",
    )


async def _main() -> None:
    settings = load_settings()
    if not settings.is_sandbox:
        raise SystemExit("error: the demo runs only with WHATSAPP_PROVIDER=sandbox")
    async with database(settings):
        try:
            print(await seed(settings))
        finally:
            await close_redis_clients()


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
