"""Benchmark: the webhook applier alone, draining a stored backlog with 1, 2 or 4 applier processes (daemons).

Status webhooks (delivered + read for each message, shuffled, 1 status per event as Meta mostly sends them) are
stored in the inbox first, without HTTP; then N processes run `run_applier` side by side until the backlog is
empty. This isolates what the applier costs per status (its CPU and PostgreSQL's), steadier on a shared host
than the end-to-end bench (bench_webhooks.py), and shows that the appliers take disjoint batches (each event
applied once: attempts = 1, the blast's counters exact).

    .venv/bin/python bench/bench_applier.py --appliers 1        # PostgreSQL (a fresh database)
    .venv/bin/python bench/bench_applier.py --appliers 2 --statuses 100000
    .venv/bin/python bench/bench_applier.py --database-url sqlite:///tmp/bench.db

Reported: statuses applied per second (all appliers), CPU µs per status of the appliers and of PostgreSQL,
each applier's share, and the checks. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import on_fresh_database, sent_blast  # noqa: E402
from bench.bench_webhooks import _DatabaseCpu, _payload  # noqa: E402


def applier(
    index: int,
    settings_kwargs: dict[str, Any],
    go: Any,
    release: Any,
    applied: Any,
    cpu: Any,
    batches: Any,
    batch: int,
) -> None:
    """Child process: one daemon's applier, from `go` until the backlog is empty; `cpu[index]` set then. Its
    database connections stay open until `release` (their server processes' CPU is read before)."""

    async def main() -> None:
        from shared.config import load_settings
        from shared.db import close_db, open_db
        from shared.events import close_redis_clients
        from shared.services import webhooks

        settings = load_settings(**settings_kwargs)
        await open_db(settings)
        stop = asyncio.Event()

        def on_batch(report: webhooks.ApplyReport) -> None:
            applied[index] += report.statuses
            batches[index] += 1

        async def watch() -> None:
            while await webhooks.backlog() > 0:
                await asyncio.sleep(0.05)
            stop.set()

        await asyncio.to_thread(go.wait)
        cpu0 = time.process_time()
        watcher = asyncio.create_task(watch())
        await webhooks.run_applier(stop, settings=settings, batch=batch, on_batch=on_batch)
        await watcher
        cpu[index] = time.process_time() - cpu0
        await asyncio.to_thread(release.wait)
        await close_db()
        await close_redis_clients()

    from shared import eventloop

    eventloop.run(main())


async def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from shared.config import load_settings
    from shared.db import close_db, open_db
    from shared.events import close_redis_clients
    from shared.models import Blast, Template, WebhookEvent
    from shared.services import webhooks
    from shared.services.transitions import utcnow
    from shared.status import TemplateStatus

    settings_kwargs: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "WHATSAPP_PROVIDER": "sandbox",
        "BLAST_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "BLAST_WEBHOOK_EVENT_RETENTION_S": 3600,
    }
    await open_db(load_settings(**settings_kwargs))
    template = await Template.create(name="bench", language="id", status=TemplateStatus.APPROVED)
    n_rcpt = args.statuses // 2
    blast = await sent_blast(template, name="target", recipients=n_rcpt, wamid_prefix="wamid.b")
    import random

    events = [(f"wamid.b{i}", "delivered", 1750000000 + i // 5000) for i in range(n_rcpt)]
    events += [(f"wamid.b{i}", "read", 1750000010 + i // 5000) for i in range(n_rcpt)]
    random.Random(1).shuffle(events)
    bodies = [_payload([e]).decode() for e in events]
    for start in range(0, len(bodies), 2000):
        now = utcnow()
        await webhooks.insert_events([(b, now) for b in bodies[start : start + 2000]])

    ctx = mp.get_context("spawn")
    go, release = ctx.Event(), ctx.Event()
    applied = ctx.Array("q", args.appliers)
    cpu = ctx.Array("d", args.appliers)
    batches = ctx.Array("q", args.appliers)
    procs = [
        ctx.Process(target=applier, args=(k, settings_kwargs, go, release, applied, cpu, batches, args.batch))
        for k in range(args.appliers)
    ]
    for p in procs:
        p.start()
    await asyncio.sleep(3)  # the children import and connect before the clock starts
    db_cpu = _DatabaseCpu(database_url)
    t0 = time.perf_counter()
    go.set()
    while not all(cpu) and any(p.is_alive() for p in procs):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    db_cpu_s = db_cpu.used()
    release.set()
    for p in procs:
        await asyncio.to_thread(p.join)
    final = await Blast.get(id=blast.id)
    attempts = set(await WebhookEvent.all().distinct().values_list("attempts", flat=True))
    n = len(bodies)
    result = {
        "database": database_url.split("://")[0],
        "appliers": args.appliers,
        "batch": args.batch,
        "statuses": n,
        "applied_statuses_per_s": round(sum(applied) / elapsed),
        "elapsed_s": round(elapsed, 2),
        "applied_per_applier": list(applied),
        "mean_events_per_batch": round(sum(applied) / max(1, sum(batches))),
        "applier_cpu_us_per_status": round(sum(cpu) / n * 1e6),
        "database_cpu_us_per_status": round(db_cpu_s / n * 1e6) if db_cpu_s is not None else None,
        "each_event_applied_once": attempts == {1} and sum(applied) == n,
        "counters_exact": (final.n_sent, final.n_delivered, final.n_read) == (0, 0, n_rcpt),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    await close_db()
    await close_redis_clients()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--statuses", type=int, default=60_000)
    parser.add_argument("--appliers", type=int, default=1)
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="events of the first batch (default: the applier's; claims double up to its maximum while full)",
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh PostgreSQL database")
    args = parser.parse_args()
    os.environ.setdefault("BLAST_ENV_FILE", os.devnull)
    if args.batch is None:
        from shared.services.webhooks.apply import APPLY_BATCH

        args.batch = APPLY_BATCH

    async def with_db() -> dict[str, Any]:
        return await on_fresh_database(lambda url: run(args, url), args.database_url)

    from shared import eventloop

    print(json.dumps(eventloop.run(with_db()), indent=2))


if __name__ == "__main__":
    main()
