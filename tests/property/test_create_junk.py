"""Property: whatever bytes a recipients file holds, create either makes a consistent blast or raises one clear
error and leaves nothing behind (never a crash, never a half-created blast)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import Settings
from shared.errors import BlastError
from shared.models import Blast, Recipient, Template
from shared.services import blasts
from tests.factories import make_template

cells = st.one_of(
    st.sampled_from(
        ["+6281234567890", "+14155552671", "0812-3456-7890", "abc", "", "+", "Ada", "1;2", '"q"']
    ),
    st.text(max_size=12),
)
rows = st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8)
headers = st.sampled_from(
    ["phone,1,2", "Phone;1;2", " PHONE ,1,2", "phone,1", "name,1,2", "phone,2,1,extra", ""]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=headers,
    body=rows,
    delim=st.sampled_from([",", ";"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    junk=st.binary(max_size=8),
)
async def test_create_from_junk_is_all_or_nothing(
    db: Settings, header: str, body: list[list[str]], delim: str, newline: str, bom: bool, junk: bytes
) -> None:
    text = newline.join([header.replace(",", delim), *(delim.join(r) for r in body)]) + newline
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8") + junk

    if not await Template.exists():
        await make_template()
    before = await Blast.all().count()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.csv"
        path.write_bytes(data)
        try:
            result = await blasts.create_blast(
                settings=db, name="p", template="order_update", language="en_US", recipients=path
            )
        except BlastError as exc:
            assert "\n" not in str(exc)
            assert await Blast.all().count() == before
            return
    blast = await Blast.get(id=result.id)
    n = await Recipient.filter(blast_id=blast.id).count()
    assert n == blast.total == blast.n_pending == result.recipients > 0
    assert all(r.reason for r in result.rejected)
