"""Benchmark: a draft with quiet hours, on SQLite or PostgreSQL: the create form's preview of its file, creating
the draft, and scheduling it (each recipient's due time written in batches).

    .venv/bin/python bench/bench_quiet_draft.py                      # 100k recipients on SQLite
    .venv/bin/python bench/bench_quiet_draft.py --database-url postgres://postgres@127.0.0.1:5432/DB

The file has a `timezone` column (WIB, WITA, WIT, one row in four empty: phonenumbers' zone). Measures, in
seconds: `preview_csv` (the create form reads the file; and the same numbers without the column), `create_blast` of a draft with quiet hours (zones stored),
scheduling it at 22:00 WITA (due times), and scheduling a draft created without zones and given quiet hours by
an edit (zones looked up, then due times). On a build without quiet drafts only the preview and an ordinary draft
are timed. Not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_settings, named_template  # noqa: E402


async def run(rows: int, database_url: str) -> None:
    from shared.clock import utcnow
    from shared.db import database
    from shared.models import Recipient
    from shared.services import blast_actions, blasts, preview

    settings = bench_settings(database_url)
    path = Path(tempfile.mkdtemp()) / "r.csv"
    plain = path.with_name("plain.csv")
    zones = ["WIB", "WITA", "WIT", ""]
    with path.open("w", encoding="utf-8") as f, plain.open("w", encoding="utf-8") as g:
        f.write("phone;name;timezone\n")
        g.write("phone;name\n")
        for i in range(rows):
            f.write(f"+62812{i:08d};N{i};{zones[i % 4]}\n")
            g.write(f"+62812{i:08d};N{i}\n")
    day = (utcnow() + timedelta(days=2)).date()
    night = datetime(day.year, day.month, day.day, 22, 0, tzinfo=ZoneInfo("Asia/Makassar")).isoformat()
    has_quiet_drafts = "quiet_hours" in blasts.edit_blast.__code__.co_varnames
    out: list[str] = []
    async with database(settings):
        await named_template("Hi {{name}}")
        for name, file in (("preview, no timezone column", plain), ("preview, timezone column", path)):
            t0 = time.perf_counter()
            seen = await preview.preview_csv(settings=settings, template="bench", language="en_US", path=file)
            out.append(f"{name} {time.perf_counter() - t0:.2f} s ({seen.accepted:,} accepted)")
        common = {
            "settings": settings,
            "template": "bench",
            "language": "en_US",
            "recipients": path,
            "draft": True,
        }
        if not has_quiet_drafts:
            t0 = time.perf_counter()
            made = await blasts.create_blast(name="plain", **common)  # type: ignore[arg-type]
            out.append(f"ordinary draft create {time.perf_counter() - t0:.2f} s")
            t0 = time.perf_counter()
            await blast_actions.reschedule_blast(made.id, settings=settings, send_at=night)
            out.append(f"schedule {time.perf_counter() - t0:.3f} s")
        else:
            t0 = time.perf_counter()
            made = await blasts.create_blast(name="quiet", quiet_hours="21:00-08:00", **common)  # type: ignore[arg-type]
            out.append(f"quiet draft create {time.perf_counter() - t0:.2f} s")
            t0 = time.perf_counter()
            done = await blast_actions.reschedule_blast(made.id, settings=settings, send_at=night)
            out.append(f"schedule (due times) {time.perf_counter() - t0:.2f} s")
            assert await Recipient.filter(blast_id=made.id, due_at=None).count() == 0, done
            later = await blasts.create_blast(name="later", quiet_hours="off", **common)  # type: ignore[arg-type]
            await Recipient.filter(blast_id=later.id).update(zone=None)  # as if imported without zones
            await blasts.edit_blast(later.id, settings=settings, quiet_hours="21:00-08:00")
            t0 = time.perf_counter()
            await blast_actions.reschedule_blast(later.id, settings=settings, send_at=night)
            out.append(f"schedule (zones + due times) {time.perf_counter() - t0:.2f} s")
            assert await Recipient.filter(blast_id=later.id, due_at=None).count() == 0
    dialect = "postgres" if database_url.startswith("postgres") else "sqlite"
    print(f"{dialect} {rows:,} recipients: " + "; ".join(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    url = args.database_url or f"sqlite://{tempfile.mkdtemp()}/bench.db"
    asyncio.run(run(args.rows, url))


if __name__ == "__main__":
    main()
