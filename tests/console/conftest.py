"""Provides the console tests' app factory (frozen clock) and seeded data without ids or times that vary."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from console.app import BlastConsole, build_app
from shared.config import Settings
from shared.models import Blast, Recipient, Template
from shared.status import BlastStatus, RecipientStatus, TemplateStatus

FROZEN_NOW = datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
SEND_AT = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
COMPONENTS: list[dict[str, Any]] = [
    {
        "type": "BODY",
        "text": "Hi {{1}}, your order {{2}} is on its way.",
        "example": {"body_text": [["Ada", "A-1"]]},
    }
]
AppFactory = Callable[..., BlastConsole]


def frozen_clock() -> datetime:
    return FROZEN_NOW


@pytest.fixture
def make_app(settings: Settings) -> AppFactory:
    def factory(**kwargs: Any) -> BlastConsole:
        kwargs.setdefault("clock", frozen_clock)
        return build_app(settings, **kwargs)

    return factory


async def seed_template(
    name: str = "order_update", status: TemplateStatus = TemplateStatus.APPROVED, language: str = "en_US"
) -> Template:
    return await Template.create(
        name=name,
        language=language,
        status=status,
        components=COMPONENTS,
        parameter_format="POSITIONAL",
        category="UTILITY",
        parameter_names=["1", "2"],
        parameter_count=2,
        meta_id=f"meta-{name}-{language}",
    )


async def seed_blast(
    template: Template,
    name: str,
    status: BlastStatus,
    *,
    n: int = 10,
    failed: int = 0,
    sent: int = 0,
    unknown: int = 0,
    phone_base: int = 0,
    error_code: int | None = 131026,
) -> Blast:
    """A blast with n recipients: `failed` FAILED, `sent` SENT, `unknown` UNKNOWN, the rest PENDING."""
    pending = n - failed - sent - unknown
    blast = await Blast.create(
        name=name,
        template=template,
        status=status,
        send_at=SEND_AT,
        total=n,
        n_pending=pending,
        n_failed=failed,
        n_sent=sent,
        n_unknown=unknown,
        created_by="tester",
        started_at=SEND_AT if status not in (BlastStatus.SCHEDULED, BlastStatus.DRAFT) else None,
    )
    rows = []
    for i in range(n):
        if i < failed:
            st, code, text = RecipientStatus.FAILED, error_code, "Message undeliverable"
        elif i < failed + sent:
            st, code, text = RecipientStatus.SENT, None, None
        elif i < failed + sent + unknown:
            st, code, text = RecipientStatus.UNKNOWN, None, "timeout"
        else:
            st, code, text = RecipientStatus.PENDING, None, None
        rows.append(
            Recipient(
                blast_id=blast.id,
                phone=f"+62812{phone_base + i:08d}",
                params={"1": f"N{i}", "2": f"O{i}"},
                row=i + 1,
                status=st,
                error_code=code,
                error_text=text,
                wamid=f"wamid.{blast.name}.{i}" if st == RecipientStatus.SENT else None,
                sent_at=SEND_AT if st == RecipientStatus.SENT else None,
                failed_at=SEND_AT if st == RecipientStatus.FAILED else None,
            )
        )
    await Recipient.bulk_create(rows)
    return blast


def write_csv(path: Path, rows: list[str], header: str = "phone,1,2") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


async def settle(pilot: Pilot[None]) -> None:
    """Let the app handle what is queued, finish its workers, and handle what they posted."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()
