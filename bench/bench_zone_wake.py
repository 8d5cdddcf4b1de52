"""Benchmark (not in CI): how soon after each zone's time a local-time blast's first message reaches the fake.

Each run creates a local-time blast whose zones are due `--gap` seconds apart (one minute in the demo; a few
seconds keep the bench short: the path is the same), `--per-zone` recipients each, and records per zone the delay
from the zone's due time to the first arrival at the fake Graph API (its own receive clock). The first zone starts
the blast (the scheduler's start of a SCHEDULED blast); the later ones are the wake-up of a running local-time
blast. Prints every run, then p50/p99/max per zone and over the later zones, on SQLite or PostgreSQL. Issue #15
asks p99 <= 50 ms.

    .venv/bin/python bench/bench_zone_wake.py --db sqlite --runs 10
    .venv/bin/python bench/bench_zone_wake.py --db postgres --runs 10
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from daemon_bench import BenchError, DbKind, Harness, create_blast, run_async  # noqa: E402

from shared.clock import utcnow  # noqa: E402
from shared.events import publish  # noqa: E402
from shared.models import Blast, Recipient  # noqa: E402
from shared.status import BlastStatus  # noqa: E402

ZONES = ("+09:00", "+08:00", "+07:00", "+06:00", "+05:00")


async def one_run(h: Harness, zones: int, per_zone: int, gap_s: float, lead_s: float) -> list[float]:
    """One local-time blast; returns, per zone, seconds from its due time to the first arrival at the fake."""
    await forget_arrivals(h)  # every run sends to the same numbers
    blast_id = await create_blast(zones * per_zone)
    first = utcnow() + timedelta(seconds=lead_s)
    due = [first + timedelta(seconds=gap_s * z) for z in range(zones)]
    ids = await Recipient.filter(blast_id=blast_id).order_by("id").values_list("id", flat=True)
    phones: dict[str, int] = {}
    for z in range(zones):
        group = list(ids[z * per_zone : (z + 1) * per_zone])
        await Recipient.filter(id__in=group).update(zone=ZONES[z % len(ZONES)], due_at=due[z])
        for i in range(z * per_zone, (z + 1) * per_zone):
            phones[f"1555{i:07d}"] = z
    await Blast.filter(id=blast_id).update(
        status=BlastStatus.SCHEDULED,
        send_at=due[0],
        local_time=f"{datetime.now():%Y-%m-%dT%H:%M}",
        timezone="UTC",
        due_times=[d.isoformat() for d in due],
    )
    await publish(h.settings, "scheduled", blast_id=blast_id)
    await h.wait_finished(blast_id, lead_s + gap_s * zones + 60.0, poll_s=0.2)
    firsts: dict[int, float] = {}
    for m in await h.fake_messages():
        z = phones.get(str(m["to"]))
        if z is not None:
            firsts[z] = min(firsts.get(z, float("inf")), float(m["received_at"]))
    if len(firsts) != zones:
        raise BenchError(f"blast {blast_id}: arrivals for zones {sorted(firsts)} only")
    return [firsts[z] - due[z].timestamp() for z in range(zones)]


async def forget_arrivals(h: Harness) -> None:
    url = f"http://127.0.0.1:{h.fake_port}/_fake/reset"
    async with aiohttp.ClientSession() as session, session.post(url, json={"templates": False}) as resp:
        resp.raise_for_status()


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def line(name: str, xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return f"{name}: n {len(ms)}, p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"


async def main(args: argparse.Namespace) -> None:
    db: DbKind = args.db
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    async with Harness(args.rate, args.latency_ms, args.jitter_ms, db=db) as h:
        runs: list[list[float]] = []
        for r in range(args.runs):
            delays = await one_run(h, args.zones, args.per_zone, args.gap, args.lead)
            runs.append(delays)
            print(
                f"run {r + 1}: " + ", ".join(f"zone {z + 1} {d * 1000:.1f} ms" for z, d in enumerate(delays))
            )
    print(
        f"{db}, {args.zones} zones {args.gap:g} s apart, {args.per_zone} recipients each, {args.runs} runs:"
    )
    for z in range(args.zones):
        print("  " + line(f"zone {z + 1}{' (blast start)' if z == 0 else ''}", [run[z] for run in runs]))
    print("  " + line("later zones (wake-up of a running blast)", [d for run in runs for d in run[1:]]))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--zones", type=int, default=3)
    parser.add_argument("--per-zone", type=int, default=20)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between the zones' times")
    parser.add_argument(
        "--lead", type=float, default=1.5, help="seconds from creation to the first zone's time"
    )
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--jitter-ms", type=float, default=2.0)
    run_async(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
