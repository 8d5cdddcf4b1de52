"""Benchmark: the console's responsiveness with 10,000 blasts and a 1,000,000-recipient blast in the database.

    .venv/bin/python bench/bench_console.py                      # SQLite in a temp dir
    .venv/bin/python bench/bench_console.py --blasts 10000 --recipients 1000000 \\
        --database-url postgres://postgres@127.0.0.1:5432/benchconsole   # an existing, empty database
    .venv/bin/python bench/bench_console.py --database-url sqlite:///tmp/bench.db   # seeded once, then reused

Measures (headless, 120x40):
- first paint: app start until the dashboard shows its data;
- blasts screen: key 2 until its first page is shown;
- the big blast's detail: Enter until its counts and first recipient page are shown (DetailLoaded handled);
  opened OPENS times, the first with a cold cache: the median and the slowest are printed;
- the longest key-press-to-screen delay while the live refresh runs (`key_delays`): from the key event being
  posted to the driver's queue (as a terminal delivers it) until the compositor has rendered a frame showing the
  cursor moved; Pilot's own waits for idle and animations are not counted.
The database is seeded once; a database that already holds the data ("the big one") is reused as it is.
Target: under 300 ms each. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

from rich.console import RenderableType
from textual.pilot import Pilot
from textual.screen import Screen

from console.app import BlastConsole
from shared.config import load_settings
from shared.db import close_db, open_db
from shared.models import Blast, Recipient, Template
from shared.status import BlastStatus, RecipientStatus

BATCH = 20_000
#: The big blast's detail is opened this many times (the first with a cold cache); the median is reported.
OPENS = 5


async def seed(n_blasts: int, n_recipients: int) -> int:
    t = await Template.create(
        name="bench_tpl",
        language="en_US",
        status="APPROVED",
        parameter_format="POSITIONAL",
        components=[{"type": "BODY", "text": "Hi {{1}}"}],
        parameter_names=["1"],
        parameter_count=1,
    )
    now = datetime.now(UTC)
    statuses = list(BlastStatus)
    for start in range(0, n_blasts - 1, BATCH):
        await Blast.bulk_create(
            [
                Blast(
                    name=f"bench blast {i}",
                    template=t,
                    status=statuses[i % len(statuses)],
                    send_at=now,
                    total=100,
                    n_pending=50,
                    n_sent=50,
                )
                for i in range(start, min(n_blasts - 1, start + BATCH))
            ]
        )
    big = await Blast.create(
        name="the big one",
        template=t,
        status=BlastStatus.PROCESSING,
        send_at=now,
        total=n_recipients,
        n_pending=n_recipients // 2,
        n_sent=n_recipients // 2,
    )
    for start in range(0, n_recipients, BATCH):
        await Recipient.bulk_create(
            [
                Recipient(
                    blast_id=big.id,
                    phone=f"+62812{i:08d}",
                    params={"1": "x"},
                    row=i + 1,
                    status=RecipientStatus.SENT if i % 2 else RecipientStatus.PENDING,
                )
                for i in range(start, min(n_recipients, start + BATCH))
            ]
        )
    return big.id


async def key_delays(app: BlastConsole, pilot: Pilot[None], presses: int = 40) -> float:
    """The longest time from a key event being posted to the screen having been re-rendered with its effect.

    The key is posted the way a terminal delivers it (`driver.send_message`, as Pilot does internally), and
    the app's `_display` (called by the screen's compositor right after it has rendered an update; headless
    runs compute the update too, they only skip writing it) is wrapped to note when each frame was rendered
    and where the recipient table's cursor was. A key's delay ends at the first frame showing its cursor move.
    Keys are spread over about four seconds, so several live refreshes (one per second) land among them.
    """
    from textual import events
    from textual.widgets import DataTable

    table = app.screen.query_one("#recipient-table", DataTable)
    frames: list[tuple[float, int]] = []
    display = app._display

    def timed_display(screen: Screen[object], renderable: RenderableType | None) -> None:
        display(screen, renderable)
        frames.append((time.perf_counter(), table.cursor_row))

    app._display = timed_display  # type: ignore[method-assign]  # an instance-level probe, bench only
    worst = 0.0
    try:
        for _ in range(presses):
            target = table.cursor_row + 1
            frames.clear()
            driver = app._driver
            assert driver is not None
            key = events.Key("down", None)
            key.set_sender(app)
            posted = time.perf_counter()
            driver.send_message(key)
            deadline = posted + 10
            while time.perf_counter() < deadline:
                shown = next((t for t, row in frames if row >= target), None)
                if shown is not None:
                    worst = max(worst, shown - posted)
                    break
                await asyncio.sleep(0.0005)
            else:
                worst = max(worst, float("inf"))
            await asyncio.sleep(0.1)
    finally:
        del app._display
    await pilot.pause()
    return worst


async def measure(settings_kwargs: dict[str, object]) -> dict[str, float]:
    from console.app import build_app
    from console.screens.blast_detail import BlastDetailScreen, DetailLoaded
    from console.screens.blasts import BlastsLoaded
    from console.screens.dashboard import DashboardLoaded

    settings = load_settings(**settings_kwargs)
    app = build_app(settings)
    seen: dict[str, float] = {}

    def hook(message: object) -> None:
        for kind in (DashboardLoaded, BlastsLoaded, DetailLoaded):
            if isinstance(message, kind):
                seen.setdefault(kind.__name__, time.perf_counter())

    async def wait_for(name: str, pilot: object) -> float:
        deadline = time.perf_counter() + 30
        while name not in seen and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        return seen.get(name, float("inf"))

    t0 = time.perf_counter()
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        out["first_paint_ms"] = (await wait_for("DashboardLoaded", pilot) - t0) * 1000
        t1 = time.perf_counter()
        await pilot.press("2")
        out["open_blasts_ms"] = (await wait_for("BlastsLoaded", pilot) - t1) * 1000
        await pilot.pause()
        opens: list[float] = []
        for attempt in range(OPENS):
            if attempt:
                await pilot.press("escape")
                await pilot.pause()
                await asyncio.sleep(0.3)
                seen.pop("DetailLoaded", None)
            t2 = time.perf_counter()
            await pilot.press("enter")  # newest first: the big blast is the first row
            opens.append((await wait_for("DetailLoaded", pilot) - t2) * 1000)
            assert isinstance(app.screen, BlastDetailScreen)
        out["open_big_detail_ms"] = statistics.median(opens)
        out["open_big_detail_max_ms"] = max(opens)
        out["worst_key_delay_ms"] = await key_delays(app, pilot) * 1000
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blasts", type=int, default=10_000)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = (
        args.database_url
        or f"sqlite://{os.path.join(tempfile.mkdtemp(prefix='blast-bench-console-'), 'bench.db')}"
    )
    kwargs: dict[str, object] = {
        "DATABASE_URL": url,
        "WHATSAPP_PROVIDER": "sandbox",
        "BLAST_REDIS_PREFIX": f"benchconsole{os.getpid()}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    settings = load_settings(**kwargs)
    await open_db(settings)
    try:
        if await Blast.exists(name="the big one"):
            print("reusing the data already in the database")
        else:
            t = time.perf_counter()
            await seed(args.blasts, args.recipients)
            print(
                f"seeded {args.blasts:,} blasts and {args.recipients:,} recipients in "
                f"{time.perf_counter() - t:.1f} s"
            )
        result = await measure(kwargs)
    finally:
        await close_db()
    for key, value in result.items():
        flag = "ok" if value < 300 else "SLOW (target < 300 ms)"
        print(f"{key:<22} {value:8.1f} ms  {flag}")


if __name__ == "__main__":
    asyncio.run(main())
