"""GET /metrics: Prometheus text that prometheus-client's own parser reads, with no per-blast or per-phone
labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from shared import metrics
from shared.status import RecipientStatus
from tests.daemon.webhook_helpers import WebhookEnv, apply_all, make_blast, status_payload, wenv

__all__ = ["wenv"]

EXPECTED = {
    "blast_messages",
    "blast_send_rate_per_second",
    "blast_send_rate_limit_per_second",
    "blast_chunks_in_flight",
    "blast_queue_depth",
    "blast_blasts",
    "blast_schedule_lateness_seconds",
    "blast_webhook_events",
    "blast_webhook_rejected_signatures",
    "blast_template_sync",
}


async def test_metrics_parse_and_name_what_the_issue_asks(wenv: WebhookEnv) -> None:
    await make_blast([("+6281234567890", RecipientStatus.SENT, "wamid.M")])
    await wenv.post_ok(status_payload("wamid.M", "delivered"))
    await wenv.post(status_payload("wamid.M", "read"), signed=False)
    await apply_all(wenv.settings)
    metrics.MESSAGES.labels("sent").inc(0)
    metrics.TEMPLATE_SYNC.labels("ok").inc(0)
    metrics.SCHEDULE_LATENESS.observe(0.02)

    resp = await wenv.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    assert set(families) >= EXPECTED
    samples = [s for f in families.values() for s in f.samples]
    for sample in samples:
        assert not {"blast", "blast_id", "phone", "wamid", "recipient"} & set(sample.labels), sample
    by_name = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    assert by_name[("blast_webhook_events_total", (("type", "status_delivered"),))] >= 1
    assert by_name[("blast_webhook_rejected_signatures_total", (("reason", "missing"),))] >= 1
    assert by_name[("blast_blasts", (("status", "PROCESSING"),))] == 1
    assert by_name[("blast_send_rate_limit_per_second", ())] == wenv.settings.BLAST_RATE_LIMIT
