"""Benchmark: how long resolving 4 sender tokens from a secrets file holds the event loop.

A sender's token lives in an env file (`WHATSAPP_TOKEN_BRAND_B=…` in /etc/blast/secrets.env); the daemon resolves
it at every lane load and the console at every Senders refresh. Since 9417c10 the files are read in a thread
(`senders.resolve_tokens`); before, each `resolve_token` parsed them on the event loop. A ticker task measures
how long the loop is held while 2,000 resolves of 4 tokens run; on a tree before 9417c10 the script falls back to
`resolve_token` (so the same script measures both).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_token_read.py

Reported: wall µs per resolve of 4 tokens, and the ticker's p99 and longest wait (how long the loop was held).
Not run in CI.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = [f"WHATSAPP_TOKEN_{i}" for i in range(4)]
ROUNDS = 2000


async def run() -> str:
    from shared.config import Settings
    from shared.services import senders

    settings = Settings(_env_file=None, WHATSAPP_PROVIDER="sandbox")  # type: ignore[call-arg]
    threaded = hasattr(senders, "resolve_tokens")
    loop = asyncio.get_running_loop()
    waits: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t0 = loop.time()
            await asyncio.sleep(0)
            waits.append(loop.time() - t0)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        if threaded:
            assert all((await senders.resolve_tokens(settings, NAMES)).values())
        else:
            assert all(senders.resolve_token(settings, n) for n in NAMES)  # type: ignore[attr-defined]
        await asyncio.sleep(0)
    wall = (time.perf_counter() - t0) / ROUNDS
    done.set()
    await tick
    waits.sort()
    return (
        f"{'threaded' if threaded else 'on loop '}: {wall * 1e6:5.0f} µs per resolve of 4 tokens; loop held "
        f"p99 {waits[int(len(waits) * 0.99)] * 1e6:5.0f} µs, longest {waits[-1] * 1e6:6.0f} µs; "
        f"load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    folder = tempfile.mkdtemp()
    path = Path(folder) / "secrets.env"
    path.write_text(
        "WHATSAPP_APP_SECRET=x\n" + "".join(f"{n}=EAAG{'x' * 200}{i}\n" for i, n in enumerate(NAMES))
    )
    os.environ["BLAST_ENV_FILE"] = str(path)
    for name in NAMES:
        os.environ.pop(name, None)
    print(asyncio.run(run()))


if __name__ == "__main__":
    main()
