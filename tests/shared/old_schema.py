"""Provides rows written the way an older release wrote them, for the migration tests: raw INSERTs of the columns
that release had (the models already carry the columns of later migrations, which the old tables lack)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from tortoise import connections

from shared.status import RecipientStatus, TemplateStatus

AT = datetime(2030, 1, 1, tzinfo=UTC)


async def insert_row(table: str, values: Mapping[str, object]) -> int:
    """INSERT one row with exactly these columns; returns its id."""
    conn = connections.get("default")
    pg = conn.capabilities.dialect == "postgres"
    marks = ", ".join(f"${i}" if pg else "?" for i in range(1, len(values) + 1))
    sql = f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})"
    if pg:
        rows = await conn.execute_query_dict(sql + " RETURNING id", list(values.values()))
        return int(rows[0]["id"])
    await conn.execute_query(sql, list(values.values()))
    _, rows = await conn.execute_query("SELECT last_insert_rowid() AS id")
    return int(rows[0]["id"])


async def old_template(name: str, language: str, status: TemplateStatus, category: str = "UTILITY") -> int:
    """A template row as releases before 0006_pricing wrote it."""
    return await insert_row(
        "template",
        {
            "name": name,
            "language": language,
            "category": category,
            "status": status.value,
            "parameter_format": "POSITIONAL",
            "components": "[]",
            "parameter_names": "[]",
            "parameter_count": 0,
            "created_at": AT,
            "updated_at": AT,
        },
    )


async def old_recipient(blast_id: int, phone: str, status: RecipientStatus, **values: object) -> int:
    """A recipient row as releases before 0006_pricing wrote it (0003 and later: pass sent_at in `values`)."""
    return await insert_row(
        "recipient",
        {
            "blast_id": blast_id,
            "phone": phone,
            "params": "{}",
            "row": 0,
            "status": status.value,
            "attempts": 0,
            "created_at": AT,
            "updated_at": AT,
            **values,
        },
    )


async def old_blast(template_id: int, status: str, **values: object) -> int:
    """A blast row as releases before 0007_local_time wrote it (counters given in `values` as needed)."""
    counters = ("total", "n_pending", "n_sending", "n_sent", "n_delivered", "n_read", "n_failed")
    more = ("n_cancelled", "n_skipped", "n_unknown")
    return await insert_row(
        "blast",
        {
            "name": "old",
            "template_id": template_id,
            "status": status,
            "constants": "{}",
            "created_by": "",
            "created_at": AT,
            "updated_at": AT,
            "generation": 0,
            **dict.fromkeys(counters + more, 0),
            **values,
        },
    )
