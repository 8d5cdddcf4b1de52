"""Send benchmark of blast-daemon (not in CI): one blast through N daemons, measured where Meta would see it.

One run: a fresh database (SQLite file in a temporary directory, the default users get; or a fresh PostgreSQL
database on BENCH_PG), a fresh Redis key prefix, the fake Graph API (`python -m shared.fake_graph --mps 0
--no-pair-rate --latency-ms L --jitter-ms J --quiet`) and N `blast-daemon` processes on them (the Harness of
bench/daemon_bench.py). A blast of --n recipients is created, then set SCHEDULED for now and published; the
measured window runs from that moment until the bench sees it COMPLETED (polled every 50 ms; a deadline,
--timeout, stops a run that does not finish and prints what it saw). Run from the repo root:

    .venv/bin/python bench/send_bench.py                                   # SQLite, 1 daemon, 20,000 at 1,000 msg/s, 50±20 ms
    .venv/bin/python bench/send_bench.py --db postgres --daemons 2
    .venv/bin/python bench/send_bench.py --rate 1000000 --in-flight 100    # unlimited; BLAST_MAX_IN_FLIGHT=100
    .venv/bin/python bench/send_bench.py --latency-ms 300 --jitter-ms 100
    .venv/bin/python bench/send_bench.py --repeat 3 --json                 # one JSON object per run on stdout
    .venv/bin/python bench/send_bench.py --py-spy /tmp/send.json           # speedscope profile of daemon 1
    .venv/bin/python bench/send_bench.py --py-spy /tmp/send.txt --py-spy-format raw   # folded stacks
    .venv/bin/python bench/send_bench.py matrix [--repeat R]               # the standard set: a markdown table

`matrix` runs each row of the standard set as its own `send_bench.py … --json` process (the exact command is
printed with each row): SQLite and PostgreSQL x 1 and 2 daemons at 1,000 msg/s, 50±20 ms; unlimited (rate
1,000,000) with --in-flight 100 on each database; 1,000 msg/s at 300±100 ms on SQLite; n 20,000 each.

Reported per run (one line, ready to paste into bench/README.md, or the JSON object):
- rate: (arrivals - 1) / (last arrival - first arrival), from the fake's `received_at` of every send request
  it received (GET /_fake/messages once the blast is COMPLETED), in msg/s and as % of the limit;
- max 1 s window: the most arrivals in any sliding 1 s window (sorted, two pointers), and that / the limit;
- first send: first arrival at the fake - the send time the bench wrote (ms); done: the blast's finished_at -
  the last arrival (ms);
- daemon CPU s per 1,000 messages: user + system of every daemon process and its children (live descendants,
  plus the reaped ones' children_user/children_system), summed over the N daemons, sampled just before the blast
  is scheduled and just after it is seen COMPLETED. py-spy is the bench's child, not the daemon's, so it is
  never counted (it is also excluded by pid);
- PostgreSQL CPU s per 1,000 messages (--db postgres): the server backends serving the daemons. Every 250 ms
  (and at both ends of the window) the bench reads pg_stat_activity for the bench database's client backends,
  drops those whose client port is a TCP connection of the bench process itself (its ORM pool, its sampler)
  and reads each remaining backend's user + system with psutil. A backend present at the first sample counts
  from its value then, one that appears mid-run from zero (it started in the window); a backend that exits
  mid-run counts up to its last sample (at most 250 ms lost). WAL writer, checkpointer and autovacuum are not
  counted;
- the load average (os.getloadavg) at the start and end of the run (the run itself adds to it: daemons, fake,
  PostgreSQL), and "other processes": the cores, on average over the window, that the rest of the host used (all
  non-idle CPU time minus the daemons, the fake, the bench and the counted PostgreSQL backends; Redis, py-spy and
  PostgreSQL's background processes are in it). The host has 2 cores shared with other work, so figures are
  noisy: compare runs taken while others used little.

--in-flight K passes BLAST_MAX_IN_FLIGHT=K to every daemon (the most requests in flight per daemon); the line
says when the daemon's Settings do not know the variable (then it is ignored). With --py-spy FILE, `py-spy
record` samples daemon 1 (100 Hz, the default blocking mode, which pauses it briefly on each sample) over the
measured window; such runs' rates and lateness are perturbed, their CPU figures are not (py-spy's own CPU is
not the daemon's). With --repeat R > 1 the profiles are FILE-1, FILE-2 … (before the extension).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psutil
from daemon_bench import (  # first: it puts the repo root on sys.path for `shared`
    PG_ADMIN,
    ROOT,
    BenchError,
    DbKind,
    Harness,
    create_blast,
    run_async,
    stop_process,
)

from shared.config import Settings
from shared.status import BlastStatus

UNLIMITED = 100_000.0  # a limit at or above this is "unlimited": no % of the limit, no window ratio
PG_PORT = urlsplit(PG_ADMIN).port or 5432
SAMPLE_S = 0.25
CMD = ".venv/bin/python bench/send_bench.py"


# --- CPU -------------------------------------------------------------------------------------------------------
def tree_cpu(pids: Iterable[int], exclude: Iterable[int] = ()) -> float:
    """User + system seconds of these processes and all their descendants (live, and reaped: children_*)."""
    skip = set(exclude)
    total = 0.0
    for pid in pids:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            if child.pid in skip:
                continue
            with contextlib.suppress(psutil.Error):
                ct = child.cpu_times()
                total += ct.user + ct.system
    return total


def host_busy() -> float:
    """CPU seconds all processors of the host spent not idle (guest time is already in user)."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0) + getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    return float(sum(t) - idle)


def own_cpu(pids: Iterable[int]) -> float:
    """User + system seconds of these processes alone (not their children)."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving the daemons on database `dbname` (see the module doc)."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.own: set[int] = set()  # backends of the bench's own connections
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.conn = await asyncpg.connect(PG_ADMIN)
        await self._sample(first=True)
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            await self._sample()

    async def _sample(self, *, first: bool = False) -> None:
        rows = await self.conn.fetch(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
            self.dbname,
        )
        # read after the query: a connection of ours that the query saw is still open now
        ports = {
            c.laddr.port
            for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port == PG_PORT
        }
        for row in rows:
            pid, port = int(row["pid"]), row["client_port"]
            if pid in self.own or port in ports:
                self.own.add(pid)
                continue
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            self.base.setdefault(pid, t.user + t.system if first else 0.0)
            self.last[pid] = t.user + t.system

    async def stop(self) -> float:
        """Take the last sample; CPU seconds used in the window."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
            await self._sample()
        await self.close()
        return sum(v - self.base[pid] for pid, v in self.last.items())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(Exception):
            await self.conn.close()


# --- py-spy ----------------------------------------------------------------------------------------------------
class PySpy:
    """`py-spy record` on one process from start() to stop(); the profile is written when it gets SIGINT."""

    def __init__(self, pid: int, out: Path, fmt: str, log: Path) -> None:
        self.pid, self.out, self.fmt, self.log = pid, out, fmt, log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 15.0) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        args = [str(exe), "record", "--pid", str(self.pid), "--format", self.fmt, "--output", str(self.out)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, process_group=0)
        deadline = time.monotonic() + timeout
        while "Sampling process" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"py-spy did not start sampling: {self.log.read_text(errors='replace')}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, 60.0)
            self.proc = None
            if not self.out.exists():
                print(f"py-spy wrote no profile: {self.log.read_text(errors='replace')}", file=sys.stderr)


# --- arrivals --------------------------------------------------------------------------------------------------
def max_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most arrivals in any half-open window [t, t + width) (times sorted)."""
    best, i = 0, 0
    for j, t in enumerate(times):
        while t - times[i] >= width:
            i += 1
        best = max(best, j - i + 1)
    return best


# --- one run ---------------------------------------------------------------------------------------------------
def num(x: float) -> str:
    return f"{x:.0f}" if x == int(x) else str(x)


def run_command(args: argparse.Namespace) -> str:
    """The command that repeats one run of these options."""
    parts = [
        CMD,
        f"--db {args.db}",
        f"--daemons {args.daemons}",
        f"--n {args.n}",
        f"--rate {num(args.rate)}",
        f"--latency-ms {num(args.latency_ms)}",
        f"--jitter-ms {num(args.jitter_ms)}",
    ]
    if args.in_flight is not None:
        parts.append(f"--in-flight {args.in_flight}")
    return " ".join(parts)


def profile_path(path: str, index: int, repeat: int) -> Path:
    p = Path(path).resolve()
    return p if repeat == 1 else p.with_name(f"{p.stem}-{index}{p.suffix}")


def sender_ids(k: int) -> list[str]:
    """Phone number ids of the --senders numbers (the fake serves them at the HIGH level, 1,000 msg/s)."""
    return [f"2000000000000{i:02d}" for i in range(1, k + 1)]


async def add_senders(k: int, rate: float) -> None:
    """K sender numbers of the fake's WABA (their token in BENCH_SENDER_TOKEN, capped at `rate`), before the
    daemons start (a daemon runs one chunk per number, counted at its start)."""
    from shared.models import Sender

    for pnid in sender_ids(k):
        await Sender.create(
            phone_number_id=pnid,
            waba_id="102290129340398",
            token_env="BENCH_SENDER_TOKEN",  # noqa: S106 (the name of a setting, not a secret)
            rate_cap=rate,
            throughput_level="HIGH",
        )


async def add_pool(blast_id: int, k: int) -> None:
    """The K numbers as the blast's pool."""
    from shared.models import Blast

    await Blast.filter(id=blast_id).update(senders=sender_ids(k))


async def run_once(args: argparse.Namespace, index: int) -> dict[str, Any]:
    env = {"BLAST_MAX_IN_FLIGHT": str(args.in_flight)} if args.in_flight is not None else {}
    db: DbKind = args.db
    load_start = os.getloadavg()
    fake_args: list[str] = []
    if args.senders:
        env["BENCH_SENDER_TOKEN"] = "fake-access-token"  # noqa: S105 (the fake's own token)
        numbers = ",".join(f"{pnid}:HIGH" for pnid in sender_ids(args.senders))
        fake_args = ["--numbers", numbers, "--record-limit", str(args.n * 2)]

    async def seed() -> None:
        if args.senders:
            await add_senders(args.senders, args.rate)

    async with Harness(
        args.rate,
        args.latency_ms,
        args.jitter_ms,
        db=db,
        daemons=args.daemons,
        env=env,
        fake_args=fake_args,
        seed=seed,
    ) as h:
        blast_id = await create_blast(args.n)
        if args.senders:
            await add_pool(blast_id, args.senders)
        pids = [p.pid for p in h.daemons]
        spy: PySpy | None = None
        if args.py_spy:
            spy = PySpy(
                pids[0],
                profile_path(args.py_spy, index, args.repeat),
                args.py_spy_format,
                h.tmp / "py-spy.log",
            )
            h.stack.callback(spy.stop)
            await spy.start()
        backends: BackendCpu | None = None
        if h.dbname is not None:
            backends = BackendCpu(h.dbname)
            h.stack.push_async_callback(backends.close)
            await backends.start()
        exclude = [spy.proc.pid] if spy is not None and spy.proc is not None else []
        mine = [os.getpid(), h.fake.pid]  # the bench and the fake (py-spy is left in "other processes")
        busy0, mine0 = host_busy(), own_cpu(mine)
        cpu0 = tree_cpu(pids, exclude)
        t0 = time.monotonic()
        send_at = await h.start_now(blast_id)
        blast = await h.wait_finished(blast_id, args.timeout)
        wall = time.monotonic() - t0
        cpu = tree_cpu(pids, exclude) - cpu0
        db_cpu = await backends.stop() if backends is not None else None
        others = host_busy() - busy0 - (own_cpu(mine) - mine0) - cpu - (db_cpu or 0.0)
        if spy is not None:
            spy.stop()
        load_end = os.getloadavg()
        messages = await h.fake_messages()
    times = sorted(float(m["received_at"]) for m in messages)
    if len(times) < 2:
        raise BenchError(f"only {len(times)} message(s) arrived at the fake")
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span
    limited = args.rate < UNLIMITED
    peak = max_window(times)
    finished = blast.finished_at.timestamp() if blast.finished_at is not None else None
    per_number: dict[str, dict[str, Any]] = {}
    for pnid in sorted({str(m.get("phone_number_id")) for m in messages}):
        own = sorted(float(m["received_at"]) for m in messages if str(m.get("phone_number_id")) == pnid)
        own_peak = max_window(own)
        per_number[pnid] = {
            "arrivals": len(own),
            "max_1s_window": own_peak,
            "max_1s_window_x_limit": own_peak / args.rate if limited else None,
        }
    accepted_to = Counter(m.get("to") for m in messages if m.get("outcome") == "accepted")
    duplicates = sum(c - 1 for c in accepted_to.values() if c > 1)
    return {
        "senders": args.senders,
        "per_number": per_number,
        "duplicates": duplicates,
        "db": args.db,
        "daemons": args.daemons,
        "n": args.n,
        "rate_limit": args.rate,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "in_flight": args.in_flight,
        "in_flight_known": "BLAST_MAX_IN_FLIGHT" in Settings.model_fields,
        "status": BlastStatus(blast.status).value,
        "sent": blast.n_sent,
        "failed": blast.n_failed,
        "unknown": blast.n_unknown,
        "arrivals": len(times),
        "accepted": sum(1 for m in messages if m.get("outcome") == "accepted"),
        "rate_msg_s": rate,
        "rate_pct_of_limit": 100.0 * rate / args.rate if limited else None,
        "max_1s_window": peak,
        "max_1s_window_x_limit": peak / args.rate if limited else None,
        "first_send_ms": (times[0] - send_at.timestamp()) * 1000.0,
        "done_after_last_ms": (finished - times[-1]) * 1000.0 if finished is not None else None,
        "wall_s": wall,
        "daemon_cpu_s": cpu,
        "daemon_cpu_s_per_1k": cpu / len(times) * 1000.0,
        "db_cpu_s": db_cpu,
        "db_cpu_s_per_1k": db_cpu / len(times) * 1000.0 if db_cpu is not None else None,
        "db_backends": len(backends.last) if backends is not None else None,
        "other_cpu_cores": others / wall,
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end],
        "py_spy": str(profile_path(args.py_spy, index, args.repeat)) if args.py_spy else None,
        "command": run_command(args),
    }


def limit_text(r: dict[str, Any]) -> str:
    return "unlimited" if r["rate_limit"] >= UNLIMITED else f"{r['rate_limit']:,.0f} msg/s"


def line(r: dict[str, Any]) -> str:
    """One run on one line (for bench/README.md)."""
    db = "SQLite" if r["db"] == "sqlite" else "PostgreSQL"
    daemons = f"{r['daemons']} daemon{'s' if r['daemons'] > 1 else ''}"
    in_flight = ""
    if r["in_flight"] is not None:
        in_flight = f", in-flight {r['in_flight']}" + (
            "" if r["in_flight_known"] else " (unknown to this daemon)"
        )
    rate = f"{r['rate_msg_s']:,.1f} msg/s"
    if r["rate_pct_of_limit"] is not None:
        rate += f" ({r['rate_pct_of_limit']:.2f} % of the limit)"
    window = f"max 1 s window {r['max_1s_window']:,} msgs"
    if r["max_1s_window_x_limit"] is not None:
        window += f" ({r['max_1s_window_x_limit']:.3f}x the limit)"
    done = (
        f", done +{r['done_after_last_ms']:.0f} ms after the last"
        if r["done_after_last_ms"] is not None
        else ""
    )
    db_cpu = f", PostgreSQL {r['db_cpu_s_per_1k']:.3f} s" if r["db_cpu_s_per_1k"] is not None else ""
    load = " ".join(f"{x:.2f}" for x in r["loadavg_end"])
    load += f", other processes {r['other_cpu_cores']:.2f} cores"
    pool = ""
    if r.get("senders"):
        windows = ", ".join(
            f"…{pnid[-2:]}: {p['arrivals']:,} msgs, max 1 s {p['max_1s_window']:,}"
            + (f" ({p['max_1s_window_x_limit']:.3f}x)" if p["max_1s_window_x_limit"] is not None else "")
            for pnid, p in r["per_number"].items()
        )
        pool = f"; {r['senders']} numbers (limit per number): {windows}; duplicates {r['duplicates']}"
    return (
        f"{db}, {daemons}, {r['n']:,} msgs, limit {limit_text(r)}, latency {r['latency_ms']:g}±{r['jitter_ms']:g} ms"
        f"{in_flight}: {rate}, {window}, first send +{r['first_send_ms']:.0f} ms{done}; CPU per 1k msgs: daemon "
        f"{r['daemon_cpu_s_per_1k']:.3f} s{db_cpu}; {r['status']} sent {r['sent']:,} failed {r['failed']} unknown "
        f"{r['unknown']}; load {load}{pool}"
    )


async def send(args: argparse.Namespace) -> None:
    for i in range(1, args.repeat + 1):
        print(f"run {i}/{args.repeat}: {run_command(args)}", file=sys.stderr, flush=True)
        result = await run_once(args, i)
        print(json.dumps(result) if args.json else line(result), flush=True)


# --- matrix ----------------------------------------------------------------------------------------------------
MATRIX: list[list[str]] = [
    ["--db", "sqlite", "--daemons", "1"],
    ["--db", "sqlite", "--daemons", "2"],
    ["--db", "postgres", "--daemons", "1"],
    ["--db", "postgres", "--daemons", "2"],
    ["--db", "sqlite", "--daemons", "1", "--rate", "1000000", "--in-flight", "100"],
    ["--db", "postgres", "--daemons", "1", "--rate", "1000000", "--in-flight", "100"],
    ["--db", "sqlite", "--daemons", "1", "--latency-ms", "300", "--jitter-ms", "100"],
]
STANDARD = {"--n": "20000", "--rate": "1000", "--latency-ms": "50", "--jitter-ms": "20"}


def matrix_rows(n: int | None) -> list[list[str]]:
    rows = []
    for row in MATRIX:
        opts = dict(zip(row[::2], row[1::2], strict=True))
        full = {**{k: v for k, v in STANDARD.items() if k not in opts}, **opts}
        if n is not None:
            full["--n"] = str(n)
        order = ["--db", "--daemons", "--n", "--rate", "--latency-ms", "--jitter-ms", "--in-flight"]
        rows.append([x for k in order if k in full for x in (k, full[k])])
    return rows


def run_child(argv: list[str]) -> tuple[int, str]:
    """Run one row; on Ctrl-C (which the child also gets) let it clean up instead of killing it."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *argv], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        out, _ = proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        stop_process(proc, signal.SIGINT, 120.0)
        raise
    return proc.returncode, out.decode()


def matrix(args: argparse.Namespace) -> None:
    header = (
        "| db | daemons | limit | latency | in-flight | rate | of limit | max 1 s window | first send | "
        "daemon CPU / 1k msgs | PostgreSQL CPU / 1k msgs | load (1 min, start -> end) | other processes | command |"
    )
    table = [header, "|" + "---|" * (header.count("|") - 1)]
    try:
        for row in matrix_rows(args.n):
            extra = ["--repeat", str(args.repeat)] if args.repeat > 1 else []
            command = " ".join([CMD, *row])
            print(f"\n$ {' '.join([command, *extra])}", file=sys.stderr, flush=True)
            rc, out = run_child([*row, *extra, "--json"])
            results = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
            for r in results:
                print(line(r), file=sys.stderr, flush=True)
                table.append(table_row(r))
            if rc != 0 or len(results) < args.repeat:
                table.append(f"| failed (exit {rc}) |" + " |" * (header.count("|") - 3) + f" `{command}` |")
    finally:
        print("\n".join(table), flush=True)


def table_row(r: dict[str, Any]) -> str:
    """One run as a row of the matrix's markdown table."""
    in_flight = "-" if r["in_flight"] is None else str(r["in_flight"])
    if r["in_flight"] is not None and not r["in_flight_known"]:
        in_flight += " (ignored)"
    db = "SQLite" if r["db"] == "sqlite" else "PostgreSQL"
    db_cpu = "-" if r["db_cpu_s_per_1k"] is None else f"{r['db_cpu_s_per_1k']:.3f} s"
    pct = "-" if r["rate_pct_of_limit"] is None else f"{r['rate_pct_of_limit']:.2f} %"
    ratio = "" if r["max_1s_window_x_limit"] is None else f" ({r['max_1s_window_x_limit']:.3f}x)"
    return (
        f"| {db} | {r['daemons']} | {limit_text(r)} | {r['latency_ms']:g}±{r['jitter_ms']:g} ms | {in_flight} | "
        f"{r['rate_msg_s']:,.1f} msg/s | {pct} | {r['max_1s_window']:,} msgs{ratio} | {r['first_send_ms']:.0f} ms | "
        f"{r['daemon_cpu_s_per_1k']:.3f} s | {db_cpu} | {r['loadavg_start'][0]:.2f} -> {r['loadavg_end'][0]:.2f} | "
        f"{r['other_cpu_cores']:.2f} cores | `{r['command']}` |"
    )


# --- command line ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    if not argv or argv[0] not in ("run", "matrix", "-h", "--help"):
        argv = ["run", *argv]
    parser = argparse.ArgumentParser(description="Send benchmark of blast-daemon (see the module docstring).")
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="one configuration, --repeat times (the default)")
    run.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    run.add_argument("--daemons", type=int, default=1)
    run.add_argument("--n", type=int, default=20_000)
    run.add_argument(
        "--rate", type=float, default=1000.0, help="BLAST_RATE_LIMIT, msg/s (1000000: unlimited)"
    )
    run.add_argument("--latency-ms", type=float, default=50.0)
    run.add_argument("--jitter-ms", type=float, default=20.0)
    run.add_argument("--in-flight", type=int, default=None, help="BLAST_MAX_IN_FLIGHT for every daemon")
    run.add_argument("--json", action="store_true", help="one JSON object per run on stdout")
    run.add_argument(
        "--py-spy", metavar="FILE", default=None, help="profile daemon 1 over the measured window"
    )
    run.add_argument("--py-spy-format", choices=["speedscope", "raw"], default="speedscope")
    run.add_argument("--repeat", type=int, default=1)
    run.add_argument(
        "--senders", type=int, default=0, help="send from a pool of K fake numbers (HIGH level), --rate each"
    )
    run.add_argument("--timeout", type=float, default=None, help="seconds to wait for COMPLETED")
    mat = sub.add_parser("matrix", help="the standard set, a markdown table")
    mat.add_argument("--repeat", type=int, default=1)
    mat.add_argument("--n", type=int, default=None, help="override n (a quick check of the bench itself)")
    args = parser.parse_args(argv)
    if args.mode == "run" and args.timeout is None:
        args.timeout = 120.0 + 5.0 * args.n / min(args.rate, 1000.0)
    return args


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.mode == "matrix":
        try:
            matrix(args)
        except KeyboardInterrupt:
            print("interrupted: the table above has the rows that finished", file=sys.stderr)
            raise SystemExit(130) from None
    else:
        run_async(send(args))


if __name__ == "__main__":
    main()
