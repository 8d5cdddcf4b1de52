"""Benchmark: CSV import (blast create) rows/s and peak RSS, on SQLite or PostgreSQL.

    .venv/bin/python bench/bench_csv_import.py                 # 100k and 1M rows on SQLite
    .venv/bin/python bench/bench_csv_import.py --rows 100000 --database-url postgres://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench_csv_import.py --rows 100000 --local-time   # a timezone column, --local-time

Each size runs in a fresh process so its peak RSS is its own. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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
    from shared.config import load_settings
    from shared.db import database
    from shared.models import Template
    from shared.services.blasts import create_blast

    settings = load_settings(
        DATABASE_URL=database_url,
        WHATSAPP_PROVIDER="sandbox",
        BLAST_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:6]}",
    )
    async with database(settings):
        await Template.create(
            name="bench",
            language="en_US",
            status="APPROVED",
            parameter_format="NAMED",
            components=[{"type": "BODY", "text": "Hi {{first_name}}, order {{order}}"}],
        )
        t0 = time.perf_counter()
        local: dict[str, object] = {"local_time": True, "send_at": "2099-12-08 09:00"} if local_time else {}
        result = await create_blast(
            settings=settings, name="bench", template="bench", language="en_US", recipients=csv_path, **local
        )
        elapsed = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": rows,
        "accepted": result.recipients,
        "rejected": result.rejected_total,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "peak_rss_mb": round(rss_mb, 1),
    }


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


def child(rows: int, database_url: str, local_time: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "r.csv"
        write_csv(csv_path, rows, zones=local_time)
        url = database_url if database_url != "sqlite" else f"sqlite://{tmp}/bench.db"
        print(json.dumps(asyncio.run(run_one(rows, url, csv_path, local_time))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="row counts (default 100000 and 1000000)")
    parser.add_argument("--database-url", default="sqlite", help="sqlite (a temp file) or a postgres:// URL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reader-only", action="store_true", help="time the CSV reader alone (no database)")
    parser.add_argument("--local-time", action="store_true", help="a timezone column and a local-time blast")
    args = parser.parse_args()
    sizes = args.rows or [100_000, 1_000_000]
    if args.reader_only:
        reader_only(sizes[0])
        return
    if args.child:
        child(sizes[0], args.database_url, args.local_time)
        return
    print(f"{'rows':>10} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>12} {'rejected':>9}")
    for rows in sizes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--rows",
                str(rows),
                "--database-url",
                args.database_url,
                *(["--local-time"] if args.local_time else []),
            ],
            capture_output=True,
            text=True,
            env=os.environ,
            check=False,
        )
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(1)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['rows']:>10} {r['seconds']:>8} {r['rows_per_s']:>8} {r['peak_rss_mb']:>12} {r['rejected']:>9}"
        )


if __name__ == "__main__":
    main()
