"""Benchmark: status webhooks the daemon absorbs while a blast is sending, and the acknowledgement latency.

The daemon side (HTTP app + webhook applier + a simulated sender moving another blast PENDING -> SENDING -> SENT
at BLAST_RATE_LIMIT) runs in this process; with --applier-process the applier runs in a process of its own, as
a second daemon instance does on a busy host (BLAST_WEBHOOK_APPLIER=false in the one that takes the webhooks).
The load generator (signed Meta-shaped POSTs, one or more statuses each, N concurrent keep-alive connections)
runs in a child process. It stands in for Meta, which is not on this machine, so it is made cheap (a minimal
HTTP/1.1 client, about 20 µs per POST; `--client aiohttp` costs about 150 µs) to leave the 2 cores to the daemon
and PostgreSQL.

    .venv/bin/python bench/bench_webhooks.py                          # PostgreSQL (a fresh database), 1 status/POST
    .venv/bin/python bench/bench_webhooks.py --rate 5000 --concurrency 128 --applier-process
    .venv/bin/python bench/bench_webhooks.py --per-post 10 --statuses 100000
    .venv/bin/python bench/bench_webhooks.py --database-url sqlite:///tmp/bench.db
    .venv/bin/python bench/bench_webhooks.py --daemons 2     # 2 daemon processes, each intake + applier
    .venv/bin/python bench/bench_webhooks.py --intake aiohttp   # POST /webhook through aiohttp (default: lean)

With --daemons N the HTTP intake and the applier run in N daemon processes (as N `blast-daemon` instances behind
the proxy: the generator's connections are spread over them), and this process only prepares the database and
runs the simulated sender; `applied_per_daemon` shows each daemon's share of the applying.

Reported: acknowledged statuses/s, ack p50/p99 (ms), applied statuses/s (from the first POST until every
recipient reached its final status) and during the load, the backlog of stored events when the load ended and how
long the applier took to catch up, CPU µs per status of the daemon (both processes), the applier process, the
generator and PostgreSQL (steadier than rates on a shared host), rows per group-commit INSERT, the event-loop lag
p99, and the simulated sender's rate. `--ingest-only` runs no applier (the acknowledgement path alone); `--loop
asyncio` compares with asyncio's own loop (default: uvloop, as the daemon). Not run in CI.

Measured on the 2-core host (load 0.3-1.9 from the runs themselves), PostgreSQL, 1 status per POST, 2 runs each:
- two processes (--applier-process), offered 5,000/s on 128 connections: 4,993-4,995/s acknowledged and applied
  (backlog 0), ack p50 4-10 ms, p99 18-32 ms; flat out on 64 connections: 7,935-8,390/s, p99 19 ms, backlog 0.
- one process, flat out: 5,289-5,599/s acknowledged, p99 36-56 ms, the applier 8,100-8,300 events behind at the
  end, caught up 0.6-0.8 s later; offered 5,000/s: 4,957-4,997/s, p99 55-61 ms (one core for both jobs).
- 10 statuses per POST: 44,746/s acknowledged (one process), 66,992/s (two), applied 13,977-16,266/s.
- SQLite, one process, flat out: 2,176/s, p99 59 ms.
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

from bench._common import on_fresh_database, sent_blast  # noqa: E402

SECRET = "bench-secret"  # noqa: S105  # signs the bench's own webhooks only


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


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads status + Content-Length bodies.

    The generator stands in for Meta, which is not on this machine: it must cost the shared 2 cores as little as
    it can so that they measure the daemon (aiohttp's client costs about 4 times as much per request).
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def request(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


def load_generator(
    url: str, n: int, per_post: int, concurrency: int, out: Any, rate: float = 0.0, client: str = "raw"
) -> None:
    """Child process: POST n statuses (delivered then read for n/2 wamids, shuffled), report latencies.

    `url` may list several daemons, comma-separated: connection k goes to daemon k mod N (the proxy's share).

    With rate > 0 the POSTs start on a fixed schedule (open loop: statuses/s), else as fast as the server answers.
    Status timestamps advance as Meta's would at that rate, so a batch holds many different ones.
    """
    import random
    from urllib.parse import urlsplit

    import aiohttp

    from shared.services.webhooks import sign

    async def main() -> None:
        wamids = [f"wamid.bench{i}" for i in range(n // 2)]
        per_s = int(rate) if rate > 0 else 5000
        events = [(w, "delivered", 1750000000 + i // per_s) for i, w in enumerate(wamids)]
        events += [(w, "read", 1750000010 + i // per_s) for i, w in enumerate(wamids)]
        random.Random(1).shuffle(events)  # reads overtake deliveries: the forward-only path is exercised
        bodies = [_payload(events[i : i + per_post]) for i in range(0, len(events), per_post)]
        signatures = [sign(SECRET, b) for b in bodies]
        urls = url.split(",")
        targets = [(p.hostname or "127.0.0.1", p.port or 80) for p in map(urlsplit, urls)]
        host, port = targets[0]
        path = urlsplit(urls[0]).path
        raw = [
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: {sig}\r\nContent-Length: {len(b)}\r\n\r\n"
            ).encode()
            + b
            for b, sig in zip(bodies, signatures, strict=True)
        ]
        latencies: list[float] = []
        errors = 0
        next_index = 0
        interval = per_post / rate if rate > 0 else 0.0
        loop = asyncio.get_running_loop()
        session: aiohttp.ClientSession | None = None
        if client == "aiohttp":
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        t_begin = time.perf_counter()

        async def post(conn: _RawConnection | None, i: int) -> int:
            if session is not None:
                headers = {"X-Hub-Signature-256": signatures[i], "Content-Type": "application/json"}
                async with session.post(urls[0], data=bodies[i], headers=headers) as resp:
                    await resp.read()
                    return resp.status
            assert conn is not None
            return await conn.request(raw[i])

        async def worker(k: int) -> None:
            nonlocal errors, next_index
            conn: _RawConnection | None = None
            w_host, w_port = targets[k % len(targets)]
            while next_index < len(bodies):
                i = next_index
                next_index += 1
                if interval:
                    delay = t_begin + i * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if session is None and (conn is None or conn.transport is None):
                    _, conn = await loop.create_connection(_RawConnection, w_host, w_port)
                t0 = time.perf_counter()
                try:
                    status = await post(conn, i)
                except ConnectionError:
                    status, conn = 0, None
                if status != 200:
                    errors += 1
                latencies.append(time.perf_counter() - t0)
            if conn is not None and conn.transport is not None:
                conn.transport.close()

        start = time.perf_counter()
        cpu_start = time.process_time()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        if session is not None:
            await session.close()
        latencies.sort()
        out.put(
            {
                "posts": len(bodies),
                "statuses": len(events),
                "elapsed_s": elapsed,
                "cpu_s": cpu,
                "errors": errors,
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                "max_ms": latencies[-1] * 1000,
            }
        )

    # Bodies are built and signed before the clock starts; uvloop, as the daemon.
    from shared import eventloop

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


def _result_of(proc: Any, out: Any) -> dict[str, Any]:
    """The generator's report; raises if it died without one (instead of waiting for ever)."""
    import queue

    while True:
        try:
            result: dict[str, Any] = out.get(timeout=1)
            return result
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"the load generator exited ({proc.exitcode}) without a report") from None


def applier_process(settings_kwargs: dict[str, Any], applied: Any, stop: Any, cpu: Any, batches: Any) -> None:
    """Child process: the webhook applier alone (a daemon instance with BLAST_WEBHOOK_APPLIER on), counting the
    statuses it applies into `applied` until `stop` is set; its CPU seconds go to `cpu`."""

    async def main() -> None:
        from shared.config import load_settings
        from shared.db import close_db, open_db
        from shared.events import close_redis_clients
        from shared.services import webhooks

        settings = load_settings(**settings_kwargs)
        await open_db(settings)
        done = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        def on_batch(report: webhooks.ApplyReport) -> None:
            with applied.get_lock():
                applied.value += report.statuses
            with batches.get_lock():
                batches.value += 1

        cpu0 = time.process_time()
        watcher = asyncio.create_task(watch())
        await webhooks.run_applier(done, settings=settings, on_batch=on_batch)
        cpu.value = time.process_time() - cpu0
        await watcher
        await close_db()
        await close_redis_clients()

    from shared import eventloop

    eventloop.run(main())


def daemon_process(
    index: int,
    settings_kwargs: dict[str, Any],
    ports: Any,
    applied: Any,
    stop: Any,
    cpu: Any,
    rows: Any,
    batches: Any,
) -> None:
    """Child process: one daemon instance behind the proxy (HTTP intake + its applier, as `blast-daemon` runs
    them), counting the statuses its applier applies into `applied[index]` until `stop` is set; its CPU
    seconds go to `cpu[index]`, its group-commit (batches, rows) to `rows[2 * index : 2 * index + 2]`."""

    async def main() -> None:
        from daemon.http.app import WRITER, bound_port, create_app, serve
        from daemon.http.health import Readiness
        from shared.config import load_settings
        from shared.db import close_db, open_db
        from shared.events import close_redis_clients
        from shared.services import webhooks

        settings = load_settings(**settings_kwargs)
        await open_db(settings)
        app = create_app(settings, readiness=Readiness(True, True, True))
        runner = await serve(app, "127.0.0.1", 0)
        done = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        def on_batch(report: webhooks.ApplyReport) -> None:
            with applied.get_lock():
                applied[index] += report.statuses
            with batches.get_lock():
                batches.value += 1

        cpu0 = time.process_time()
        watcher = asyncio.create_task(watch())
        applier = asyncio.create_task(webhooks.run_applier(done, settings=settings, on_batch=on_batch))
        ports.put((index, bound_port(runner)))
        await watcher
        await applier
        cpu[index] = time.process_time() - cpu0
        writer = app[WRITER]
        rows[2 * index], rows[2 * index + 1] = writer.batches, writer.rows
        await runner.cleanup()
        await close_db()
        await close_redis_clients()

    from shared import eventloop

    eventloop.run(main())


class _DatabaseCpu:
    """CPU seconds PostgreSQL's processes used since construction (None for SQLite, or without psutil)."""

    def __init__(self, database_url: str) -> None:
        self.start: dict[int, float] | None = None
        if database_url.startswith("postgres"):
            with contextlib.suppress(ImportError):
                self.start = self._sample()

    @staticmethod
    def _sample() -> dict[int, float]:
        import psutil

        found: dict[int, float] = {}
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] and proc.info["name"].startswith("postgres"):
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    found[proc.pid] = times.user + times.system
        return found

    def used(self) -> float | None:
        if self.start is None:
            return None
        now = self._sample()
        return sum(t - self.start.get(pid, 0.0) for pid, t in now.items())


async def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from daemon.http.app import WRITER, bound_port, create_app, serve
    from daemon.http.health import Readiness
    from shared.config import load_settings
    from shared.db import close_db, open_db
    from shared.events import close_redis_clients
    from shared.models import Blast, Recipient, Template
    from shared.services import webhooks
    from shared.status import BlastStatus, TemplateStatus

    settings_kwargs: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "WHATSAPP_PROVIDER": "sandbox",
        "WHATSAPP_APP_SECRET": SECRET,
        "BLAST_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "BLAST_WEBHOOK_EVENT_RETENTION_S": 3600,
        "BLAST_WEBHOOK_INTAKE": args.intake,
    }
    settings = load_settings(**settings_kwargs)
    await open_db(settings)
    template = await Template.create(name="bench", language="id", status=TemplateStatus.APPROVED)
    n_rcpt = args.statuses // 2
    target = await sent_blast(template, name="webhook target", recipients=n_rcpt, wamid_prefix="wamid.bench")
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

    ctx = mp.get_context("spawn")
    # --daemons N: N daemon processes (HTTP intake + applier each), the generator's connections spread over
    # them as the proxy would; else the HTTP app runs in this process.
    daemons = args.daemons
    d_applied = ctx.Array("q", max(1, daemons))
    d_cpu = ctx.Array("d", max(1, daemons))
    d_rows = ctx.Array("q", 2 * max(1, daemons))
    apply_batches = ctx.Value("q", 0)  # applier batches that applied something, all appliers
    d_stop = ctx.Event()
    d_procs = []
    runner = None
    if daemons:
        ports_q = ctx.Queue()
        for k in range(daemons):
            d_proc = ctx.Process(
                target=daemon_process,
                args=(k, settings_kwargs, ports_q, d_applied, d_stop, d_cpu, d_rows, apply_batches),
            )
            d_proc.start()
            d_procs.append(d_proc)
        ports = sorted(await asyncio.to_thread(lambda: [ports_q.get(timeout=60) for _ in range(daemons)]))
        url = ",".join(f"http://127.0.0.1:{port}/webhook" for _, port in ports)
    else:
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
        apply_batches.value += 1
        if applied[0] >= args.statuses:
            applied_done.set()

    # --applier-process: the applier runs in a process of its own, as a second daemon instance on the host
    # would (BLAST_WEBHOOK_APPLIER=false in the one that takes the webhooks).
    applied_shared = ctx.Value("q", 0)
    applier_cpu = ctx.Value("d", 0.0)
    applier_stop = ctx.Event()
    applier_proc = None
    if args.applier_process and not args.ingest_only and not daemons:
        applier_proc = ctx.Process(
            target=applier_process,
            args=(settings_kwargs, applied_shared, applier_stop, applier_cpu, apply_batches),
        )
        applier_proc.start()

    def applied_now() -> int:
        if daemons:
            return sum(d_applied)
        return int(applied_shared.value) if applier_proc is not None else applied[0]

    async def all_applied() -> None:
        if applier_proc is None and not daemons:
            await applied_done.wait()
            return
        while applied_now() < args.statuses:
            await asyncio.sleep(0.02)

    lags: list[float] = []

    async def lag_monitor() -> None:
        # How late a 10 ms timer fires: what the applier's slices (and everything else) cost the handlers.
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t0 - 0.01)

    monitor = asyncio.create_task(lag_monitor())
    db_cpu = _DatabaseCpu(database_url)
    cpu0 = time.process_time()
    in_process = not args.ingest_only and applier_proc is None and not daemons
    applier = asyncio.create_task(
        webhooks.run_applier(stop, settings=settings, on_batch=on_batch) if in_process else stop.wait()
    )
    sender = asyncio.create_task(simulated_sender(sending.id, settings.BLAST_RATE_LIMIT, stop, sent_counter))
    out = ctx.Queue()
    proc = ctx.Process(
        target=load_generator,
        args=(url, args.statuses, args.per_post, args.concurrency, out, args.rate, args.client),
    )
    proc.start()
    load = await asyncio.to_thread(_result_of, proc, out)
    await asyncio.to_thread(proc.join)
    t_load_end = time.perf_counter()
    t_load_start = t_load_end - load["elapsed_s"]  # the child's first POST (its start-up is not counted)
    cpu_load = time.process_time() - cpu0
    db_cpu_s = db_cpu.used()
    backlog_at_end = await webhooks.backlog()
    applied_at_end = applied_now()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_applied(), 600 if not args.ingest_only else 0.01)
    t_done = time.perf_counter()
    sender_s = time.perf_counter() - t_start
    stop.set()
    await asyncio.gather(applier, sender, monitor, return_exceptions=True)
    applier_cpu_s = 0.0
    if applier_proc is not None:
        applier_stop.set()
        await asyncio.to_thread(applier_proc.join, 60)
        applier_cpu_s = float(applier_cpu.value)
    if daemons:
        d_stop.set()
        for d_proc in d_procs:
            await asyncio.to_thread(d_proc.join, 60)
        applier_cpu_s = sum(
            d_cpu
        )  # the daemons' whole CPU (intake and applier): none of it is in this process
        batches, rows = sum(d_rows[0::2]), sum(d_rows[1::2])
    else:
        assert runner is not None
        writer = app[WRITER]
        batches, rows = writer.batches, writer.rows
        await runner.cleanup()
    lags.sort()
    final = await Blast.get(id=target.id)
    result = {
        "database": database_url.split("://")[0],
        "per_post": args.per_post,
        "client": args.client,
        "intake": args.intake,
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
        "applier": f"in each of {daemons} daemon processes"
        if daemons
        else "own process"
        if applier_proc is not None
        else ("none" if args.ingest_only else "in process"),
        "daemons": daemons or 1,
        "applied_per_daemon": list(d_applied) if daemons else None,
        "daemon_process_cpu_s": [round(c, 1) for c in d_cpu] if daemons else None,
        "applied_statuses_per_s": round(applied_now() / (t_done - t_load_start)),
        "applied_during_load_per_s": round(applied_at_end / load["elapsed_s"]),
        "backlog_events_at_load_end": backlog_at_end,
        "catch_up_s": round(t_done - t_load_end, 1),
        "daemon_cpu_us_per_status": round(
            (applier_cpu_s if daemons else cpu_load + applier_cpu_s) / load["statuses"] * 1e6
        ),
        "applier_process_cpu_us_per_status": round(applier_cpu_s / load["statuses"] * 1e6)
        if applier_proc is not None
        else None,
        "generator_cpu_us_per_status": round(load["cpu_s"] / load["statuses"] * 1e6),
        "database_cpu_us_per_status": round(db_cpu_s / load["statuses"] * 1e6)
        if db_cpu_s is not None
        else None,
        "mean_rows_per_insert": round(rows / max(1, batches), 1),
        "mean_events_per_apply_batch": round(load["posts"] / max(1, apply_batches.value), 1),
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
    parser.add_argument(
        "--client", choices=("raw", "aiohttp"), default="raw", help="the load generator's HTTP client"
    )
    parser.add_argument(
        "--intake", choices=("lean", "aiohttp"), default="lean", help="the daemon's BLAST_WEBHOOK_INTAKE"
    )
    parser.add_argument(
        "--applier-process",
        action="store_true",
        help="apply in a process of its own (a second daemon instance), not in the HTTP process",
    )
    parser.add_argument(
        "--daemons",
        type=int,
        default=0,
        help="N daemon processes (intake + applier each) behind a stand-in for the proxy (default: in process)",
    )
    parser.add_argument(
        "--ingest-only", action="store_true", help="no applier: measure the acknowledgement path alone"
    )
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
        return await on_fresh_database(lambda url: run(args, url), args.database_url)

    from shared import eventloop

    print(json.dumps(eventloop.run(with_db(), kind=args.loop), indent=2))


if __name__ == "__main__":
    main()
