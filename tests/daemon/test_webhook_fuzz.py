"""Hypothesis-generated junk bodies, signed and unsigned: never a 500, never a state change, and the applier
digests whatever was stored without getting stuck."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.models import Blast, Recipient, Suppression, Template, WebhookEvent
from shared.status import RecipientStatus
from tests.daemon.webhook_helpers import WebhookEnv, apply_all, make_blast, wenv

__all__ = ["wenv"]

# Texts without letters, so junk never spells an opt-out keyword by chance.
_TEXT = st.text(alphabet=string.digits + string.punctuation + " éß\u00a0", max_size=12)
_KEYS = st.sampled_from(
    [
        "object",
        "entry",
        "changes",
        "field",
        "value",
        "statuses",
        "messages",
        "id",
        "status",
        "timestamp",
        "recipient_id",
        "errors",
        "code",
        "biz_opaque_callback_data",
        "user_preferences",
        "event",
        "type",
        "from",
    ]
)
_FIELD = st.sampled_from(
    ["messages", "user_preferences", "message_template_status_update", "message_template_quality_update", "x"]
)
_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    _TEXT,
    st.sampled_from(["sent", "delivered", "read", "failed", "played", "wamid.nope", "blast=1;rcpt=1;try=1"]),
)
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | _TEXT, inner, max_size=5),
    max_leaves=25,
)
_SHAPED = st.builds(
    lambda field, value, obj: {
        "object": obj,
        "entry": [{"id": "1", "changes": [{"field": field, "value": value}]}],
    },
    _FIELD,
    st.dictionaries(_KEYS, _JSON, max_size=5),
    st.sampled_from(["whatsapp_business_account", None, "page"]),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    _JSON.map(lambda v: json.dumps(v).encode()),
    _SHAPED.map(lambda v: json.dumps(v).encode()),
)


async def _state() -> tuple[Any, ...]:
    return (
        sorted(await Recipient.all().values_list("id", "status", "wamid")),
        sorted(await Blast.all().values_list("id", "status", "n_sent", "n_delivered", "n_read", "n_failed")),
        sorted(await Template.all().values_list("id", "status")),
        await Suppression.all().count(),
    )


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES, signed=st.booleans())
async def test_junk_bodies_never_cause_a_500_or_a_state_change(
    wenv: WebhookEnv, body: bytes, signed: bool
) -> None:
    if not await Blast.exists():
        await make_blast([("+6281234567890", RecipientStatus.SENT, "wamid.Z")])
    before = await _state()
    resp = await wenv.post(None, raw=body, signed=signed)
    assert resp.status in (200, 400, 401, 403, 413), resp.status
    if not signed:
        assert resp.status == 401
    await apply_all(wenv.settings)
    assert await _state() == before
    assert await WebhookEvent.filter(processed_at__isnull=True).count() == 0
