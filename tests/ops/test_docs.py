"""docs/OPERATIONS.md stays true: the deploy files it links exist, and the messages it quotes are the ones the
programs print."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
SOURCES = "\n".join(
    p.read_text(encoding="utf-8") for d in ("shared", "daemon", "console") for p in (ROOT / d).rglob("*.py")
)


def test_linked_deploy_files_exist() -> None:
    linked = set(re.findall(r"\]\(\.\./(deploy/[^)#]+)\)", GUIDE))
    assert len(linked) >= 8
    assert sorted(p for p in linked if not (ROOT / p).exists()) == []


def test_quoted_messages_come_from_the_code() -> None:
    # Fixed parts of messages the Troubleshooting section quotes (the variable parts are left out).
    for fragment in (
        "%s: %s%s; retrying with backoff (logged once until it works again)",
        "%s: working again after %s failed attempts (%.1f s)",
        "(live figures stale; actions still saved)",
        "(check REDIS_URL or REDIS_HOST/REDIS_PORT, and that redis-server runs)",
        "more than BLAST_MISSED_CUTOFF, ",
        "resume to send it now, or cancel it",
        "blast %s SCHEDULED -> PROCESSING (%s recipients pending, %.3f s after its send time)",
        "recovery sweep%s: %s SENDING -> UNKNOWN, %s leases released, dead daemons: %s",
        "webhook POST from %s refused: signature %s",
        "webhook verification refused from %s",
        "webhook applier off (BLAST_WEBHOOK_APPLIER=false): stored events are left to others",
        "webhook event %s set aside after %s attempts: %s",
        "the database schema is newer than this program (it has ",
        "upgrade blast on this machine before using it with this database",
        "changed in the env files but applied only by a restart: %s",
        "reload refused, the running configuration is kept: %s",
        "(the daemon's secrets file); ask an administrator or run it on the daemon host",
        "SIMULATED, NOTHING IS SENT TO WHATSAPP",
        "it cannot be retried: create a new blast from the original CSV",
    ):
        assert fragment in SOURCES, fragment
    assert "(no daemon alive)" in SOURCES
