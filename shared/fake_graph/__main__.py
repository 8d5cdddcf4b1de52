"""Provides `python -m shared.fake_graph`: the fake Graph API as a standalone server."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from shared import eventloop
from shared.fake_graph.server import FakeGraph
from shared.fake_graph.state import FakeConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shared.fake_graph",
        description="A local fake of the WhatsApp Cloud API (Graph API). Nothing is sent to WhatsApp.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--token", default="fake-access-token", help="the access token it accepts")
    parser.add_argument("--app-secret", default="fake-app-secret", help="key of the webhook signatures")
    parser.add_argument("--webhook-url", default=None, help="where signed status webhooks are posted")
    parser.add_argument("--phone-number-id", default=FakeConfig.phone_number_id)
    parser.add_argument("--waba-id", default=FakeConfig.business_account_id)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--mps", type=float, default=80.0, help="per-number throughput; 0 disables 130429")
    parser.add_argument("--no-pair-rate", action="store_true", help="disable the 131056 pair-rate limit")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of sends failing by webhook")
    parser.add_argument(
        "--review-delay-s", type=float, default=None, help="created templates are reviewed after"
    )
    parser.add_argument(
        "--templates", type=Path, default=None, help="JSON list of templates to seed (Meta's shape)"
    )
    parser.add_argument(
        "--templates-file", type=Path, default=None, help="keep the template store in this file"
    )
    parser.add_argument("--demo-templates", action="store_true", help="seed the sandbox's demo templates")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--numbers",
        default="",
        help="more sender numbers of the WABA: ID:LEVEL,ID:LEVEL (LEVEL STANDARD = 80 msg/s, HIGH = 1,000 msg/s)",
    )
    parser.add_argument(
        "--record-limit", type=int, default=None, help="send requests kept for /_fake/messages"
    )
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def _numbers(text: str) -> dict[str, str]:
    """ID:LEVEL,ID:LEVEL -> {id: level} (LEVEL defaults to STANDARD)."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if item.strip():
            pnid, _, level = item.strip().partition(":")
            out[pnid] = level or "STANDARD"
    return out


def build(args: argparse.Namespace) -> FakeGraph:
    config = FakeConfig(
        access_token=args.token,
        app_secret=args.app_secret,
        phone_number_id=args.phone_number_id,
        business_account_id=args.waba_id,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        mps=args.mps or None,
        pair_rate_per_s=None if args.no_pair_rate else FakeConfig.pair_rate_per_s,
        failure_rate=args.failure_rate,
        review_delay_s=args.review_delay_s,
        webhook_url=args.webhook_url,
        extra_numbers=_numbers(args.numbers),
    )
    if args.record_limit is not None:
        config.record_limit = args.record_limit
    loaded: Any = json.loads(args.templates.read_text("utf-8")) if args.templates else []
    if isinstance(loaded, dict):
        loaded = loaded.get("templates", loaded.get("data", []))
    templates: list[dict[str, Any]] = list(loaded)
    if args.demo_templates:
        # Deferred: the sandbox module imports this package, not the other way round.
        from shared.whatsapp.sandbox import DEMO_TEMPLATES

        templates += [dict(t) for t in DEMO_TEMPLATES]
    return FakeGraph(
        config,
        templates=templates,
        host=args.host,
        port=args.port,
        templates_path=args.templates_file,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s"
    )
    fake = build(args)
    print(f"fake Graph API (simulated, nothing reaches WhatsApp) on {fake.base_url}/v24.0", file=sys.stderr)
    # uvloop when installed, as the daemon: a fake that lags stamps arrivals late and in bunches
    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(fake.serve_forever())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
