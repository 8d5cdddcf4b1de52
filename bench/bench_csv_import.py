"""Benchmark: CSV import (blast create) rows/s and peak RSS, on SQLite or PostgreSQL.

    .venv/bin/python bench/bench_csv_import.py                 # 100k and 1M rows on SQLite
    .venv/bin/python bench/bench_csv_import.py --rows 100000 --database-url postgres://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench_csv_import.py --rows 100000 --local-time   # a timezone column, --local-time
    .venv/bin/python bench/bench_csv_import.py --compare      # local-time vs ordinary, alternately: within 10 %?

Each run is a fresh process on a fresh database (a temporary SQLite file, or a new PostgreSQL database on the
server of --database-url, dropped afterwards), so its peak RSS is its own. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_settings, named_template  # noqa: E402

ZONES = ("WIB", "WITA", "WIT", "")  # "": no zone written (phonenumbers, else the blast's zone)


def write_csv(path: Path, rows: int, dup_every: int = 1000, *, zones: bool = False) -> None:
    rng = random.Random(1)
    with path.open("w", encoding="utf-8") as f:
        f.write("phone;first_name;order" + (";timezone" if zones else "") + "\n")
        for i in range(rows):
            n = i - 1 if dup_every and i % dup_every == 999 else i  # a duplicate now and then
            zone = f";{ZONES[i % 4]}" if zones else ""
            f.write(f"+62812{n:08d};Name{rng.randint(0, 999)};ORD-{i}{zone}\n")


async def run_one(rows: int, database_url: str, csv_path: Path, local_time: bool = False) -> dict[str, float]:
    from shared.db import database
    from shared.services.blasts import create_blast

    settings = bench_settings(database_url)
    async with database(settings):
        await named_template("Hi {{first_name}}, order {{order}}")
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        local: dict[str, object] = {"local_time": True, "send_at": "2099-12-08 09:00"} if local_time else {}
        result = await create_blast(
            settings=settings, name="bench", template="bench", language="en_US", recipients=csv_path, **local
        )
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": rows,
        "accepted": result.recipients,
        "rejected": result.rejected_total,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "cpu_rows_per_s": round(rows / cpu),
        "peak_rss_mb": round(rss_mb, 1),
    }


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (the SQLite writer and the CSV reader run on threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reader_only(rows: int) -> None:
    """Parsing and phone validation alone (no database), for E.164 and for national numbers."""
    from shared.parsing.csv_rows import RecipientCsv

    with tempfile.TemporaryDirectory() as tmp:
        for label, region, fmt in (
            ("+E.164", None, "+62812{n:08d}"),
            ("national, region ID", "ID", "0812{n:08d}"),
        ):
            path = Path(tmp) / "r.csv"
            with path.open("w", encoding="utf-8") as f:
                f.write("phone,first_name,order\n")
                for i in range(rows):
                    f.write(fmt.format(n=i) + f",Name{i % 997},ORD-{i}\n")
            t0 = time.perf_counter()
            n = sum(
                1 for _ in RecipientCsv(path, required_keys=["first_name", "order"], default_region=region)
            )
            elapsed = time.perf_counter() - t0
            print(f"reader, {label:<22} {n:>8} rows {elapsed:6.2f} s {round(n / elapsed):>8} rows/s")


async def run_fresh(rows: int, database_url: str, csv_path: Path, local_time: bool) -> dict[str, float]:
    """`run_one` on a new database: a file in the CSV's directory, or one made on the PostgreSQL server."""
    if not database_url.startswith(("postgres://", "postgresql://")):
        return await run_one(rows, f"sqlite://{csv_path.parent}/bench.db", csv_path, local_time)
    import asyncpg

    name = f"blast_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await run_one(rows, database_url.rsplit("/", 1)[0] + "/" + name, csv_path, local_time)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def child(rows: int, database_url: str, local_time: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "r.csv"
        write_csv(csv_path, rows, zones=local_time)
        print(json.dumps(asyncio.run(run_fresh(rows, database_url, csv_path, local_time))))


def run_child(rows: int, database_url: str, local_time: bool) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--rows",
            str(rows),
            "--database-url",
            database_url,
            *(["--local-time"] if local_time else []),
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(1)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


#: `--compare` passes when the local-time import keeps this share of the ordinary import's rows/s (issue #15).
WITHIN = 0.90


def compare(rows: int, database_url: str, rounds: int) -> bool:
    """Ordinary and local-time imports of `rows` rows alternately (ABBA, each a fresh process and database);
    prints each pair and the ratio of the medians, in rows per second of wall-clock time (the figure users see)
    and per CPU second of the importing process (steadier on a shared machine; it leaves out the PostgreSQL
    server's work). True when the wall-clock ratio is within 10 %."""
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {rows} rows, {database_url}")
    print(
        f"{'round':>6} {'ordinary rows/s':>16} {'local-time rows/s':>18} {'ratio':>6}   {'per CPU s:':>10} "
        f"{'ordinary':>9} {'local-time':>10} {'ratio':>6}"
    )
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for i in range(rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        got = {local: run_child(rows, database_url, local) for local in order}
        for local, result in got.items():
            runs[local].append(result)
        o, t = got[False], got[True]
        print(
            f"{i + 1:>6} {o['rows_per_s']:>16,.0f} {t['rows_per_s']:>18,.0f} {t['rows_per_s'] / o['rows_per_s']:>6.3f}"
            f"   {'':>10} {o['cpu_rows_per_s']:>9,.0f} {t['cpu_rows_per_s']:>10,.0f} "
            f"{t['cpu_rows_per_s'] / o['cpu_rows_per_s']:>6.3f}"
        )
    med = {
        (local, key): statistics.median(r[key] for r in runs[local])
        for local in (False, True)
        for key in ("rows_per_s", "cpu_rows_per_s")
    }
    ratio = med[True, "rows_per_s"] / med[False, "rows_per_s"]
    cpu_ratio = med[True, "cpu_rows_per_s"] / med[False, "cpu_rows_per_s"]
    print(
        f"{'median':>6} {med[False, 'rows_per_s']:>16,.0f} {med[True, 'rows_per_s']:>18,.0f} {ratio:>6.3f}"
        f"   {'':>10} {med[False, 'cpu_rows_per_s']:>9,.0f} {med[True, 'cpu_rows_per_s']:>10,.0f} {cpu_ratio:>6.3f}"
    )
    verdict = "within 10 %" if ratio >= WITHIN else "NOT within 10 %"
    print(f"local-time/ordinary {ratio:.3f} (per CPU second {cpu_ratio:.3f}): {verdict}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return ratio >= WITHIN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="row counts (default 100000 and 1000000)")
    parser.add_argument("--database-url", default="sqlite", help="sqlite (a temp file) or a postgres:// URL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reader-only", action="store_true", help="time the CSV reader alone (no database)")
    parser.add_argument("--local-time", action="store_true", help="a timezone column and a local-time blast")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="ordinary and --local-time imports alternately; the ratio, and exit 1 unless within 10 %%",
    )
    parser.add_argument("--rounds", type=int, default=6, help="pairs of runs for --compare (default 6)")
    args = parser.parse_args()
    sizes = args.rows or ([100_000] if args.compare else [100_000, 1_000_000])
    if args.reader_only:
        reader_only(sizes[0])
        return
    if args.child:
        child(sizes[0], args.database_url, args.local_time)
        return
    if args.compare:
        raise SystemExit(0 if compare(sizes[0], args.database_url, args.rounds) else 1)
    print(f"{'rows':>10} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>12} {'rejected':>9}")
    for rows in sizes:
        r = run_child(rows, args.database_url, args.local_time)
        print(
            f"{r['rows']:>10} {r['seconds']:>8} {r['rows_per_s']:>8} {r['peak_rss_mb']:>12} {r['rejected']:>9}"
        )


if __name__ == "__main__":
    main()
