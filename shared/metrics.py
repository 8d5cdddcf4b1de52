"""Provides the daemon's Prometheus metrics, in one registry that any module of the daemon can increment.

No label carries a blast id or a phone number: label values are small fixed sets, so the series count stays
flat. Gauges that describe the whole deployment (send rate, queue depth, blasts by status …) are refreshed
from Redis and the database when /metrics is scraped (daemon/http/metrics.py).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

#: Send results by outcome class, incremented by the sender: sent | retry_later | recipient_permanent |
#: blast_fatal | unknown_outcome | skipped (suppressed). The webhook applier adds failed_webhook (failures
#: Meta reported later by status webhook, opt-outs excluded).
MESSAGES = Counter("blast_messages", "Messages by outcome class.", ["outcome"], registry=REGISTRY)

SEND_RATE = Gauge(
    "blast_send_rate_per_second", "Messages sent per second, all daemons (last seconds).", registry=REGISTRY
)
SEND_RATE_LIMIT = Gauge(
    "blast_send_rate_limit_per_second", "Configured send rate limit per sender number.", registry=REGISTRY
)
CHUNKS_IN_FLIGHT = Gauge("blast_chunks_in_flight", "Chunks being sent by live daemons.", registry=REGISTRY)
QUEUE_DEPTH = Gauge("blast_queue_depth", "Entries of the work streams.", ["state"], registry=REGISTRY)
BLASTS = Gauge("blast_blasts", "Blasts by status.", ["status"], registry=REGISTRY)
#: Observed by the scheduler: seconds between a blast's send time and its start.
SCHEDULE_LATENESS = Histogram(
    "blast_schedule_lateness_seconds",
    "How late blasts start after their send time.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0),
    registry=REGISTRY,
)
#: Webhook content by type: status_sent | status_delivered | status_read | status_failed | status_other |
#: message_inbound | template_status | template_quality | template_category | user_preferences | other | malformed.
WEBHOOK_EVENTS = Counter(
    "blast_webhook_events", "Webhook items received, by type.", ["type"], registry=REGISTRY
)
#: POSTs refused for their signature: missing | invalid.
WEBHOOK_REJECTED = Counter(
    "blast_webhook_rejected_signatures",
    "Webhook POSTs refused for their signature.",
    ["reason"],
    registry=REGISTRY,
)
#: Statuses that matched no recipient: unmatched (parked for a retry) | reconciled (matched later) | expired.
WEBHOOK_ORPHANS = Counter(
    "blast_webhook_orphan_statuses",
    "Statuses that matched no recipient at first.",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_BACKLOG = Gauge("blast_webhook_backlog", "Stored webhook events not applied yet.", registry=REGISTRY)
OPT_OUTS = Counter(
    "blast_opt_outs", "Numbers put on the suppression list by their owner.", ["source"], registry=REGISTRY
)
#: Incremented by the template sync: ok | failed.
TEMPLATE_SYNC = Counter(
    "blast_template_sync", "Template sync runs by outcome.", ["outcome"], registry=REGISTRY
)
TEMPLATE_UPDATES = Counter(
    "blast_template_updates", "Template status changes applied from webhooks.", ["status"], registry=REGISTRY
)
#: Incremented by the cloud client on every answer with code 190 (expired, revoked or wrong access token).
TOKEN_REJECTED = Counter(
    "blast_token_rejected", "Graph API answers rejecting the access token (code 190).", registry=REGISTRY
)
#: Incremented when a blast-fatal error (token, account, template, failure rate) pauses a blast.
BLASTS_PAUSED_BY_ERROR = Counter(
    "blast_paused_by_error",
    "Blasts paused by an error every other recipient would hit too.",
    registry=REGISTRY,
)
#: Incremented by the webhook applier once per message that became a billable delivery (pricing type regular),
#: by the category Meta applied and the market of the number in today's rate card ("unknown" without one).
BILLABLE_MESSAGES = Counter(
    "blast_billable_messages",
    "Billable deliveries reported by Meta, by pricing category and market.",
    ["category", "market"],
    registry=REGISTRY,
)
