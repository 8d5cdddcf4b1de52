"""Provides what the webhook benchmarks share: a fresh PostgreSQL database per run (dropped afterwards, whatever
happens) and the blast of SENT recipients their status webhooks are about."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


async def on_fresh_database(run: Callable[[str], Awaitable[T]], database_url: str | None) -> T:
    """`run(database_url)`; without a URL, on a PostgreSQL database made for this run and dropped after it."""
    if database_url:
        return await run(database_url)
    import asyncpg

    name = f"blast_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN.replace("postgres://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return await run(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def sent_blast(template: Any, *, name: str, recipients: int, wamid_prefix: str) -> Any:
    """A PROCESSING blast of `recipients` SENT recipients, wamids `{wamid_prefix}{i}` (phones +62812…)."""
    from shared.models import Blast, Recipient
    from shared.status import BlastStatus, RecipientStatus

    blast = await Blast.create(
        name=name, template=template, status=BlastStatus.PROCESSING, total=recipients, n_sent=recipients
    )
    for start in range(0, recipients, 5000):
        await Recipient.bulk_create(
            [
                Recipient(
                    blast_id=blast.id,
                    phone=f"+62812{i:08d}",
                    status=RecipientStatus.SENT,
                    wamid=f"{wamid_prefix}{i}",
                )
                for i in range(start, min(recipients, start + 5000))
            ]
        )
    return blast


def bench_settings(database_url: str) -> Any:
    """Settings for an in-process benchmark: this database, the sandbox provider, a Redis prefix of its own."""
    from shared.config import load_settings

    return load_settings(
        DATABASE_URL=database_url,
        WHATSAPP_PROVIDER="sandbox",
        BLAST_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:6]}",
    )


async def named_template(body: str) -> Any:
    """The APPROVED template "bench" (en_US, named parameters) with this body text."""
    from shared.models import Template

    return await Template.create(
        name="bench",
        language="en_US",
        status="APPROVED",
        parameter_format="NAMED",
        components=[{"type": "BODY", "text": body}],
    )
