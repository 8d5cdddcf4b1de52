"""Provides the client throughput bench: WhatsApp client requests/s against the fake Graph API.

The fake runs in its own process (`python -m shared.fake_graph`) so client and server each have a core.
Two runs: 0 ms latency (raw overhead), and 50 ± 20 ms (a realistic round trip), where the client must
sustain 1,000 requests/s.

    .venv/bin/python bench/bench_client.py [--seconds 10] [--concurrency 150] [--target 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.whatsapp import CloudClient, SendAccepted  # noqa: E402 (after the path fix-up above)

TOKEN = "bench-token"  # noqa: S105 (the fake's, not a secret)
TEMPLATE = {
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way."}],
}


@dataclass
class Result:
    latency: str
    seconds: float
    requests: int
    outcomes: Counter[str]
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fake(port: int, latency_ms: float, jitter_ms: float, templates: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "shared.fake_graph", "--port", str(port), "--token", TOKEN]
    args += ["--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms), "--mps", "0", "--no-pair-rate"]
    args += ["--templates", str(templates), "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the fake Graph API did not start")


async def run_load(url: str, seconds: float, concurrency: int, label: str) -> Result:
    client = CloudClient(
        api_url=url,
        access_token=TOKEN,
        phone_number_id="106540352242922",
        timeout_s=10,
        pool_size=concurrency,
    )
    await client.start()
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    components = [
        {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "A-1"}]}
    ]
    stop_at = 0.0
    counter = 0

    async def worker(n: int) -> None:
        nonlocal counter
        while time.perf_counter() < stop_at:
            counter += 1
            to = f"62811{counter % 10_000_000:08d}"
            t0 = time.perf_counter()
            result = await client.send_template(
                to=to,
                template="order_update",
                language="en_US",
                components=components,
                callback_data=f"r={counter}",
            )
            latencies.append(time.perf_counter() - t0)
            outcomes["accepted" if isinstance(result, SendAccepted) else result.error.error_class.value] += 1

    # Warm the pool, then measure.
    stop_at = time.perf_counter() + 1.0
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    outcomes.clear()
    latencies.clear()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    latencies.sort()
    total = sum(outcomes.values())
    return Result(
        latency=label,
        seconds=elapsed,
        requests=total,
        outcomes=outcomes,
        p50_ms=latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
    )


def bench(latency_ms: float, jitter_ms: float, seconds: float, concurrency: int, templates: Path) -> Result:
    port = free_port()
    proc = start_fake(port, latency_ms, jitter_ms, templates)
    try:
        label = f"{latency_ms:g} ± {jitter_ms:g} ms" if jitter_ms else f"{latency_ms:g} ms"
        return asyncio.run(run_load(f"http://127.0.0.1:{port}/v24.0", seconds, concurrency, label))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=150)
    parser.add_argument("--target", type=float, default=1000.0, help="requests/s required at 50 ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        templates = Path(tmp) / "templates.json"
        templates.write_text(json.dumps([TEMPLATE]))
        results = [
            bench(0, 0, args.seconds, args.concurrency, templates),
            bench(50, 20, args.seconds, args.concurrency, templates),
        ]
    print(
        f"client: CloudClient (aiohttp {aiohttp.__version__}), {args.concurrency} concurrent, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'latency':>14} {'requests':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}  outcomes")
    for r in results:
        print(
            f"{r.latency:>14} {r.requests:>9} {r.rate:>8.0f} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f}  "
            f"{dict(r.outcomes)}"
        )
    at_50 = results[1]
    ok = at_50.rate >= args.target and set(at_50.outcomes) == {"accepted"}
    print(f"at 50 ms: {at_50.rate:.0f} req/s, target {args.target:g}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
