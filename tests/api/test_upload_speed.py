"""A 100,000-row CSV through POST /blasts takes at most twice the CLI's import of the same file (the upload is
streamed to the same importer), and leaves no temporary file behind."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from shared.models import Blast, Recipient
from shared.services import blasts
from tests.api.conftest import ApiEnv

ROWS = 100_000


def _uploads() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("blast-upload-*"))


async def test_a_100k_row_upload_within_twice_the_cli_import_time(api: ApiEnv, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("phone,1,2\n")
        for i in range(ROWS):
            out.write(f"+62812{i:08d},Name {i},Order {i}\n")
    before = _uploads()

    started = time.perf_counter()
    cli = await blasts.create_blast(
        settings=api.settings, name="cli", template="order_update", language="en_US", recipients=path
    )
    cli_s = time.perf_counter() - started
    assert cli.recipients == ROWS

    async def chunks() -> Any:
        with path.open("rb") as f:
            while block := f.read(1 << 16):
                yield block

    form = aiohttp.FormData()
    for key, value in {"name": "api", "template": "order_update", "language": "en_US"}.items():
        form.add_field(key, value)
    form.add_field("recipients", chunks(), filename="big.csv", content_type="text/csv")
    started = time.perf_counter()
    resp = await api.post("/blasts", data=form)
    api_s = time.perf_counter() - started
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert report["accepted"] == ROWS and report["rejected_total"] == 0
    assert await Recipient.filter(blast_id=report["id"]).count() == ROWS
    assert (await Blast.get(id=report["id"])).total == ROWS
    print(f"100k rows: CLI import {cli_s:.2f} s, API upload {api_s:.2f} s")
    assert api_s <= 2 * cli_s, f"API {api_s:.2f} s vs CLI {cli_s:.2f} s"
    assert _uploads() == before  # the spooled file is deleted
