"""Benchmark: what quiet hours cost the send path of a due-time blast, on SQLite or PostgreSQL.

    .venv/bin/python bench/bench_quiet_hold.py                      # 100k recipients on SQLite
    .venv/bin/python bench/bench_quiet_hold.py --database-url postgres://postgres@127.0.0.1:5432/test

Half the recipients are in a zone inside its quiet hours now (UTC), half outside (+12:00). Measures: the claims
of pages of 500 that hold the quiet zone as they meet it and return the other one (ms per page), then
`has_claimable` (the supervisor's "anything due?", each tick) when only held rows are left. Not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_settings, named_template  # noqa: E402


async def run(rows: int, database_url: str) -> None:
    from shared.db import database
    from shared.models import Blast, Recipient
    from shared.parsing.quiet import QuietHours
    from shared.services import claims
    from shared.services.blasts import create_blast
    from shared.services.transitions import utcnow

    settings = bench_settings(database_url)
    path = Path(tempfile.mkdtemp()) / "r.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("phone;name;timezone\n")
        for i in range(rows):
            f.write(f"+62812{i:08d};N{i};{'UTC' if i % 2 else '+12:00'}\n")
    async with database(settings):
        await named_template("Hi {{name}}")
        result = await create_blast(
            settings=settings,
            name="b",
            template="bench",
            language="en_US",
            recipients=path,
            quiet_hours="off",
        )
        now = utcnow() - timedelta(seconds=1)
        await Recipient.filter(blast_id=result.id).update(due_at=now)
        await Blast.filter(id=result.id).update(due_times=[now.isoformat()], status="PROCESSING")
        t = utcnow()
        quiet = QuietHours(
            (t - timedelta(hours=2)).time().replace(second=0, microsecond=0),
            (t + timedelta(hours=2)).time().replace(second=0, microsecond=0),
        )
        pages, claimed, t0 = 0, 0, time.perf_counter()
        while claimed < rows // 2:
            got = await claims.claim_due_page(result.id, f"d:1:b/{pages}", 500, (now,), quiet=quiet)
            if not got:
                break
            claimed += len(got)
            pages += 1
        per_page = (time.perf_counter() - t0) * 1000 / max(pages, 1)
        held = await Recipient.filter(blast_id=result.id, next_attempt_at__gt=utcnow()).count()
        # Worst case for the supervisor's "anything due?" (each tick): only held rows are left PENDING.
        await Recipient.filter(blast_id=result.id, zone="+12:00").update(status="SENT")
        t0 = time.perf_counter()
        for _ in range(20):
            assert not await claims.has_claimable(result.id)
        has_ms = (time.perf_counter() - t0) * 1000 / 20
        dialect = "postgres" if database_url.startswith("postgres") else "sqlite"
        print(
            f"{dialect} {rows:,} recipients: {pages} pages of 500 ({claimed:,} returned), {per_page:.1f} ms/page "
            f"while holding; {held:,} held; has_claimable with only held rows left {has_ms:.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    url = args.database_url or f"sqlite://{tempfile.mkdtemp()}/bench.db"
    asyncio.run(run(args.rows, url))


if __name__ == "__main__":
    main()
