"""Fixtures of the daemon tests: the fake Graph API, blasts written straight into the database, and the daemon
running in-process (its receiver, scheduler and loops as tasks of the test's event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from daemon.app import serve
from daemon.runtime import Runtime
from shared.clock import utcnow
from shared.config import Settings
from shared.events import close_redis_clients, publish
from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeConfig
from shared.models import Blast, Recipient, Template
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from shared.whatsapp import build_provider

TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hello {{1}}, your order is on its way"}],
}

SettingsFactory = Callable[..., Settings]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    """The fake Graph API: no throughput or pair-rate limit, no webhooks, 5 ms answers."""
    config = FakeConfig(mps=None, pair_rate_per_s=None, latency_ms=5.0, jitter_ms=2.0, webhook_statuses=False)
    async with FakeGraph(config, templates=[TEMPLATE], seed=1) as server:
        yield server


@pytest.fixture
def cloud_settings(make_settings: Any, fake: FakeGraph) -> SettingsFactory:
    """Settings of a `cloud` daemon pointed at the fake (extra overrides as keyword arguments)."""

    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "WHATSAPP_PROVIDER": "cloud",
            "WHATSAPP_API_URL": fake.url,
            "WHATSAPP_ACCESS_TOKEN": fake.config.access_token,
            "WHATSAPP_PHONE_NUMBER_ID": fake.config.phone_number_id,
            "WHATSAPP_BUSINESS_ACCOUNT_ID": fake.config.business_account_id,
            "WHATSAPP_TIMEOUT_S": 5.0,
            "BLAST_RATE_LIMIT": 200.0,
            "TEMPLATE_SYNC_INTERVAL": 3600.0,
        }
        base.update(overrides)
        result = make_settings(**base)
        assert isinstance(result, Settings)
        return result

    return factory


async def template_row() -> Template:
    tmpl, _ = await Template.get_or_create(
        name=TEMPLATE["name"],
        language=TEMPLATE["language"],
        defaults={
            "status": TemplateStatus.APPROVED,
            "category": "UTILITY",
            "components": TEMPLATE["components"],
            "parameter_names": ["1"],
            "parameter_count": 1,
        },
    )
    return tmpl


def phone(i: int) -> str:
    return f"+1555{i:07d}"


async def make_blast(
    settings: Settings,
    n: int,
    *,
    send_at: datetime | None = None,
    valid_until: datetime | None = None,
    status: BlastStatus = BlastStatus.SCHEDULED,
    first: int = 0,
    notify: bool = True,
    **fields: Any,
) -> int:
    """A blast of n recipients (phones +1555000000{first}…), written directly into the database, with `fields`
    (e.g. `senders`). It is written as a DRAFT and given `status` only once whole, so a running daemon never
    starts it half made (before its recipients or its fields are in)."""
    tmpl = await template_row()
    blast = await Blast.create(
        name=f"test {n}",
        template=tmpl,
        status=BlastStatus.DRAFT,
        send_at=send_at or utcnow(),
        valid_until=valid_until,
        total=n,
        n_pending=n,
        created_by="test",
        **fields,
    )
    rows = [
        Recipient(blast_id=blast.id, phone=phone(first + i), params={"1": f"n{i}"}, row=i + 1)
        for i in range(n)
    ]
    await Recipient.bulk_create(rows, batch_size=5000)
    if status != BlastStatus.DRAFT:
        await Blast.filter(id=blast.id).update(status=status)
    if notify and status == BlastStatus.SCHEDULED:
        await publish(settings, "scheduled", blast_id=blast.id)
    return blast.id


async def make_local_blast(
    settings: Settings,
    groups: Sequence[tuple[str, datetime, int]],
    *,
    status: BlastStatus = BlastStatus.SCHEDULED,
) -> tuple[int, dict[str, int]]:
    """A local-time blast as `blast create --local-time` writes it, with its zones' times chosen by the test: per
    group (zone, due time, recipients), in order. Not announced to the daemons.

    Returns:
        The blast's id, and each recipient's number (without "+", as the fake records it) -> its group's index.
    """
    blast_id = await make_blast(  # a DRAFT until its zones and due times are written
        settings, sum(n for _, _, n in groups), send_at=groups[0][1], status=BlastStatus.DRAFT, notify=False
    )
    ids = list(await Recipient.filter(blast_id=blast_id).order_by("id").values_list("id", flat=True))
    group_of: dict[str, int] = {}
    start = 0
    for g, (zone, due, n) in enumerate(groups):
        await Recipient.filter(id__in=ids[start : start + n]).update(zone=zone, due_at=due)
        group_of.update({phone(i).lstrip("+"): g for i in range(start, start + n)})
        start += n
    due_times = sorted({due for _, due, _ in groups})
    await Blast.filter(id=blast_id).update(
        local_time="2030-01-01T09:00",
        timezone="UTC",
        due_times=[d.isoformat() for d in due_times],
        status=status,
    )
    return blast_id, group_of


async def wait_for(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float = 30.0,
    what: str = "condition",
    every_s: float = 0.05,
) -> None:
    """Poll `check` until it is true; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def blast_of(blast_id: int) -> Blast:
    return await Blast.get(id=blast_id)


async def status_is(blast_id: int, *statuses: BlastStatus) -> bool:
    return BlastStatus((await blast_of(blast_id)).status) in statuses


async def recipient_counts(blast_id: int) -> dict[str, int]:
    """Recipients per status counted row by row (to check the counters)."""
    out: dict[str, int] = {}
    for s in RecipientStatus:
        out[s.value] = await Recipient.filter(blast_id=blast_id, status=s).count()
    return out


async def assert_counters_exact(blast_id: int) -> None:
    blast = await blast_of(blast_id)
    counted = await recipient_counts(blast_id)
    assert {k.upper(): v for k, v in blast.counts().items()} == counted
    assert sum(counted.values()) == blast.total


@dataclass
class RunningDaemon:
    runtime: Runtime
    stop: asyncio.Event
    task: asyncio.Task[Runtime]

    async def shutdown(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout_s)


@pytest.fixture
async def start_daemon() -> AsyncIterator[Callable[[Settings], Awaitable[RunningDaemon]]]:
    """Start the daemon in-process: `d = await start_daemon(settings)`; stopped at the end of the test."""
    running: list[tuple[RunningDaemon, Any]] = []

    async def start(settings: Settings) -> RunningDaemon:
        provider = build_provider(settings)
        await provider.start()
        stop = asyncio.Event()
        got: list[Runtime] = []
        task = asyncio.create_task(
            serve(settings, provider, stop, with_http=False, with_template_sync=False, on_start=got.append)
        )
        while not got:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()
        rt = got[0]
        d = RunningDaemon(rt, stop, task)
        running.append((d, provider))
        return d

    yield start
    for d, provider in running:
        d.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(d.task, 30)
        await provider.close()
    await close_redis_clients()
