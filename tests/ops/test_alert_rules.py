"""The example alert rules name only metrics the daemon exports, and the two counters the rules need for a paused
blast and a rejected token move when that happens."""

from __future__ import annotations

import re
from pathlib import Path

from shared import metrics
from shared.config import Settings
from shared.models import Blast
from shared.services.blast_lifecycle import pause_for_error
from shared.status import BlastStatus
from tests.factories import make_blast, make_template

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "blast-alerts.yml"
REQUIRED = {
    "BlastNoDaemonAlive",
    "BlastPausedByFatalError",
    "BlastTokenRejected",
    "BlastWebhookSignatureFailures",
    "BlastTemplateSyncFailing",
}


def _exported() -> set[str]:
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
    return names


def test_rules_use_exported_metrics_only() -> None:
    text = RULES.read_text(encoding="utf-8")
    alerts = set(re.findall(r"^\s*- alert: (\w+)", text, re.MULTILINE))
    assert alerts >= REQUIRED
    used = set(re.findall(r"\b(blast_[a-z_]+?)(?:_bucket)?\b(?=[{\[)\s])", text))
    assert {"blast_paused_by_error_total", "blast_token_rejected_total"} <= used
    exported = _exported() | {"blast_schedule_lateness_seconds"}
    # Labelled families without a sample yet export no *_total line: compare on the family name too.
    missing = {m for m in used if m not in exported and m.removesuffix("_total") not in exported}
    assert missing == set(), missing
    assert "\t" not in text  # YAML forbids tabs for indentation


async def test_a_fatal_pause_moves_the_alert_counter(db: Settings) -> None:
    blast = await make_blast(await make_template(), n=3, status=BlastStatus.PROCESSING)
    before = metrics.REGISTRY.get_sample_value("blast_paused_by_error_total") or 0.0
    assert await pause_for_error(blast.id, reason="access token rejected", code=190, actor="test")
    assert (await Blast.get(id=blast.id)).status == BlastStatus.PAUSED
    assert metrics.REGISTRY.get_sample_value("blast_paused_by_error_total") == before + 1
    assert not await pause_for_error(blast.id, reason="again", code=190, actor="test")  # counted once
    assert metrics.REGISTRY.get_sample_value("blast_paused_by_error_total") == before + 1
