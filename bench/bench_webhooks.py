"""Benchmark: status webhooks the daemon absorbs while a blast is sending, and the acknowledgement latency.

The daemon side (HTTP app + webhook applier + a simulated sender moving another blast PENDING -> SENDING -> SENT
at BLAST_RATE_LIMIT) runs in this process; the load generator (signed Meta-shaped POSTs, one or more statuses
each, N concurrent connections) runs in a child process so each has a core.

    .venv/bin/python bench/bench_webhooks.py                          # PostgreSQL (a fresh database), 1 status/POST
    .venv/bin/python bench/bench_webhooks.py --per-post 10 --statuses 100000
    .venv/bin/python bench/bench_webhooks.py --database-url sqlite:///tmp/bench.db

Reported: acknowledged statuses/s, ack p50/p99 (ms), applied statuses/s (from the first POST until every
recipient reached its final status) and during the load, the backlog of stored events when the load ended and how
long the applier took to catch up, the daemon's CPU µs per status (steadier than rates on a shared host), rows per
group-commit INSERT, the event-loop lag p99, and the simulated sender's rate. `--loop asyncio` compares with
asyncio's own loop (default: uvloop, as the daemon, when installed). Not run in CI.

Quiet host (load 0.7), uvloop in daemon and generator: flat out on 64 connections 4,419/s, p99 28 ms, 134 µs per
status; offered 5,000/s on 128 connections 4,988/s, p99 62 ms, backlog caught up 0.4 s after the load.
Measured on a shared 2-core host (other test runs took 0.5-1.5 cores), uvloop, 1 status per POST:
PostgreSQL 3,384-3,684 acknowledged/s = applied/s (backlog 0), ack p50 16-17 ms, p99 42-51 ms, 152-160 µs daemon
CPU per status (before: 2,220-2,947/s, p99 62-77 ms, 215-266 µs; asyncio loop: 3,057/s, 173 µs); SQLite
2,161-2,436/s, p99 77-86 ms.
10 statuses per POST: 25,632/s acknowledged, 15,410/s applied, backlog caught up 2.6 s after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

SECRET = "bench-secret"  # noqa: S105  # signs the bench's own webhooks only
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"


def _payload(items: list[tuple[str, str, int]]) -> bytes:
    statuses = [
        {
            "id": wamid,
            "status": status,
            "timestamp": str(ts),
            "recipient_id": "6281234567890",
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"},
        }
        for wamid, status, ts in items
    ]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
                            "statuses": statuses,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(body).encode()


def load_generator(url: str, n: int, per_post: int, concurrency: int, out: Any, rate: float = 0.0) -> None:
    """Child process: POST n statuses (delivered then read for n/2 wamids, shuffled), report latencies.

    With rate > 0 the POSTs start on a fixed schedule (open loop: statuses/s), else as fast as the server answers.
    """
    import random

    import aiohttp

    from shared.services.webhooks import sign

    async def main() -> None:
        wamids = [f"wamid.bench{i}" for i in range(n // 2)]
        events = [(w, "delivered", 1750000000) for w in wamids] + [(w, "read", 1750000010) for w in wamids]
        random.Random(1).shuffle(events)  # reads overtake deliveries: the forward-only path is exercised
        bodies = [_payload(events[i : i + per_post]) for i in range(0, len(events), per_post)]
        signed = {id(b): sign(SECRET, b) for b in bodies}
        latencies: list[float] = []
        errors = 0
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for b in bodies:
            queue.put_nowait(b)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            interval = per_post / rate if rate > 0 else 0.0
            t_begin = time.perf_counter()
            sent = 0

            async def worker() -> None:
                nonlocal errors, sent
                while not queue.empty():
                    body = queue.get_nowait()
                    if interval:
                        due = t_begin + sent * interval
                        sent += 1
                        delay = due - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    headers = {"X-Hub-Signature-256": signed[id(body)], "Content-Type": "application/json"}
                    t0 = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
        latencies.sort()
        out.put(
            {
                "posts": len(bodies),
                "statuses": len(events),
                "elapsed_s": elapsed,
                "errors": errors,
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                "max_ms": latencies[-1] * 1000,
            }
        )

    # The generator stands in for Meta, which is not on this machine: make it as cheap as it can be (uvloop,
    # bodies signed before the clock starts) so the 2 cores measure the daemon, not the client.
    from daemon import eventloop

    eventloop.run(main())


async def simulated_sender(blast_id: int, rate: float, stop: asyncio.Event, counter: list[int]) -> None:
    """Moves PENDING recipients to SENDING then SENT at `rate`/s, as the daemon's sender writes them."""
    from shared.models import Recipient
    from shared.services.transitions import SendOutcome, move_recipients, record_send_outcomes
    from shared.status import RecipientStatus as R

    step = 0.1
    per_step = max(1, int(rate * step))
    while not stop.is_set():
        t0 = time.monotonic()
        ids = (
            await Recipient.filter(blast_id=blast_id, status=R.PENDING)
            .order_by("id")
            .limit(per_step)
            .values_list("id", flat=True)
        )
        if not ids:
            return
        await move_recipients(blast_id, R.SENDING, sources=[R.PENDING], ids=list(ids))  # type: ignore[arg-type]
        await record_send_outcomes(
            [
                SendOutcome(recipient_id=int(i), blast_id=blast_id, to=R.SENT, wamid=f"wamid.send{i}")
                for i in ids
            ]
        )
        counter[0] += len(ids)
        await asyncio.sleep(max(0.0, step - (time.monotonic() - t0)))


async def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from daemon.http.app import WRITER, bound_port, create_app, serve
    from daemon.http.health import Readiness
    from shared.config import load_settings
    from shared.db import close_db, open_db
    from shared.models import Blast, Recipient, Template
    from shared.notify import close_redis_clients
    from shared.services import webhooks
    from shared.status import BlastStatus, RecipientStatus, TemplateStatus

    settings = load_settings(
        DATABASE_URL=database_url,
        WHATSAPP_PROVIDER="sandbox",
        WHATSAPP_APP_SECRET=SECRET,
        BLAST_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:8]}",
        BLAST_WEBHOOK_EVENT_RETENTION_S=3600,
    )
    await open_db(settings)
    template = await Template.create(name="bench", language="id", status=TemplateStatus.APPROVED)
    n_rcpt = args.statuses // 2
    target = await Blast.create(
        name="webhook target", template=template, status=BlastStatus.PROCESSING, total=n_rcpt, n_sent=n_rcpt
    )
    for start in range(0, n_rcpt, 5000):
        await Recipient.bulk_create(
            [
                Recipient(
                    blast_id=target.id,
                    phone=f"+62812{i:08d}",
                    status=RecipientStatus.SENT,
                    wamid=f"wamid.bench{i}",
                )
                for i in range(start, min(n_rcpt, start + 5000))
            ]
        )
    sending = await Blast.create(
        name="sending",
        template=template,
        status=BlastStatus.PROCESSING,
        total=args.sending_recipients,
        n_pending=args.sending_recipients,
    )
    await Recipient.bulk_create(
        [Recipient(blast_id=sending.id, phone=f"+62813{i:08d}") for i in range(args.sending_recipients)]
    )

    app = create_app(settings, readiness=Readiness(True, True, True))
    runner = await serve(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound_port(runner)}/webhook"
    stop = asyncio.Event()
    applied_done = asyncio.Event()
    sent_counter = [0]
    t_start = time.perf_counter()
    applied = [0]

    async def on_batch(report: webhooks.ApplyReport) -> None:
        applied[0] += report.statuses
        if applied[0] >= args.statuses:
            applied_done.set()

    lags: list[float] = []

    async def lag_monitor() -> None:
        # How late a 10 ms timer fires: what the applier's slices (and everything else) cost the handlers.
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t0 - 0.01)

    monitor = asyncio.create_task(lag_monitor())
    cpu0 = time.process_time()
    applier = asyncio.create_task(webhooks.run_applier(stop, settings=settings, on_batch=on_batch))
    sender = asyncio.create_task(simulated_sender(sending.id, settings.BLAST_RATE_LIMIT, stop, sent_counter))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=load_generator, args=(url, args.statuses, args.per_post, args.concurrency, out, args.rate)
    )
    proc.start()
    load = await asyncio.to_thread(out.get)
    await asyncio.to_thread(proc.join)
    t_load_end = time.perf_counter()
    t_load_start = t_load_end - load["elapsed_s"]  # the child's first POST (its start-up is not counted)
    cpu_load = time.process_time() - cpu0
    backlog_at_end = await webhooks.backlog()
    applied_at_end = applied[0]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(applied_done.wait(), 600)
    t_done = time.perf_counter()
    sender_s = time.perf_counter() - t_start
    stop.set()
    await asyncio.gather(applier, sender, monitor, return_exceptions=True)
    writer = app[WRITER]
    await runner.cleanup()
    lags.sort()
    final = await Blast.get(id=target.id)
    result = {
        "database": database_url.split("://")[0],
        "per_post": args.per_post,
        "concurrency": args.concurrency,
        "offered_rate": args.rate or "max",
        "statuses": load["statuses"],
        "posts": load["posts"],
        "non_200": load["errors"],
        "acked_statuses_per_s": round(load["statuses"] / load["elapsed_s"]),
        "acked_posts_per_s": round(load["posts"] / load["elapsed_s"]),
        "ack_p50_ms": round(load["p50_ms"], 1),
        "ack_p99_ms": round(load["p99_ms"], 1),
        "ack_max_ms": round(load["max_ms"], 1),
        "applied_statuses_per_s": round(applied[0] / (t_done - t_load_start)),
        "applied_during_load_per_s": round(applied_at_end / load["elapsed_s"]),
        "backlog_events_at_load_end": backlog_at_end,
        "catch_up_s": round(t_done - t_load_end, 1),
        "daemon_cpu_us_per_status": round(cpu_load / load["statuses"] * 1e6),
        "mean_rows_per_insert": round(writer.rows / max(1, writer.batches), 1),
        "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 1) if lags else None,
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "all_read": final.n_read == n_rcpt,
        "n_read": final.n_read,
        "sender_msgs_per_s_during_run": round(sent_counter[0] / sender_s, 1),
    }
    await close_db()
    await close_redis_clients()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--statuses", type=int, default=60_000)
    parser.add_argument("--per-post", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="statuses/s, open loop (default: flat out)")
    parser.add_argument("--sending-recipients", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh PostgreSQL database")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the daemon's (default: uvloop if installed)",
    )
    args = parser.parse_args()
    os.environ.setdefault("BLAST_ENV_FILE", os.devnull)

    async def with_db() -> dict[str, Any]:
        if args.database_url:
            return await run(args, args.database_url)
        import asyncpg

        name = f"blast_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN.replace("postgres://", "postgresql://"))
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await run(args, PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

    from daemon import eventloop

    print(json.dumps(eventloop.run(with_db(), kind=args.loop), indent=2))


if __name__ == "__main__":
    main()
