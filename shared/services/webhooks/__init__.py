"""Provides the webhook pipeline behind the daemon's POST /webhook: signature check, the durable inbox (group
commit: a 200 means the raw body is stored), and the applier that turns stored events into forward-only
recipient statuses, opt-outs and template changes, in batches. Meta's payloads are read by
shared.parsing.webhook_payload; the callback-data rule lives in shared.parsing.callback_data.

The HTTP handler (daemon/http/webhook.py) only checks, stores and acknowledges; everything after
`EventWriter.submit` runs later in `run_applier`, so a slow database never delays Meta's acknowledgement by
more than one INSERT.

Modules: signature (X-Hub-Signature-256), inbox (webhook_event rows: group-commit writer, purge), apply (one
batch: claim, parse, apply, mark processed), orphans (parked statuses), effects (after the commit: failure-rate
feed, template events, counters), report (ApplyReport and helpers), applier (the daemon's loop).
"""

from __future__ import annotations

from shared.actors import daemon_actor
from shared.parsing.webhook_payload import (
    OptOut,
    Parsed,
    StatusItem,
    is_opt_out_text,
    opt_out_words,
    parse_body,
    parse_pricing,
)
from shared.services.webhooks.applier import run_applier
from shared.services.webhooks.apply import CLAIM_PG, apply_pending
from shared.services.webhooks.effects import (
    FIELD_HANDLERS,
    FieldHandler,
    apply_quality_event,
    apply_template_event,
    note_failures,
)
from shared.services.webhooks.inbox import (
    STORE_TIMEOUT_S,
    EventWriter,
    backlog,
    insert_events,
    purge_processed,
    store_event,
)
from shared.services.webhooks.orphans import retry_orphans
from shared.services.webhooks.report import ApplyReport
from shared.services.webhooks.signature import SignatureCheck, check_signature, sign

__all__ = [
    "CLAIM_PG",
    "FIELD_HANDLERS",
    "STORE_TIMEOUT_S",
    "ApplyReport",
    "EventWriter",
    "FieldHandler",
    "OptOut",
    "Parsed",
    "SignatureCheck",
    "StatusItem",
    "apply_pending",
    "apply_quality_event",
    "apply_template_event",
    "backlog",
    "check_signature",
    "daemon_actor",
    "insert_events",
    "is_opt_out_text",
    "note_failures",
    "opt_out_words",
    "parse_body",
    "parse_pricing",
    "purge_processed",
    "retry_orphans",
    "run_applier",
    "sign",
    "store_event",
]
