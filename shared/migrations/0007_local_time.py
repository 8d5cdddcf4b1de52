from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Local-time blasts: each recipient may carry its own zone and due time. A chunk of such a blast claims one
# due group at a time (WHERE blast_id = ? AND due_at = ? AND status = 'PENDING' ... ORDER BY id), so the claim
# walks an index range of that group's pending rows, never the blast. The index is partial: rows of ordinary
# blasts (due_at NULL) are not in it, so their imports and status changes pay nothing for it. Raw SQL as in
# 0004 (tortoise's PartialIndex only writes `col = value`); built CONCURRENTLY on PostgreSQL.

INDEX = "recipient_due"
COLUMNS = "ON recipient (blast_id, due_at, id) WHERE status = 'PENDING' AND due_at IS NOT NULL"


async def create_index(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        await client.execute_script(f"CREATE INDEX IF NOT EXISTS {INDEX} {COLUMNS}")
        return
    _, rows = await client.execute_query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
        [INDEX],
    )
    if rows and not rows[0]["indisvalid"]:
        await client.execute_script(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    await client.execute_script(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} {COLUMNS}")


async def drop_index(apps: Any, schema_editor: Any) -> None:
    await schema_editor.client.execute_script(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [('models', '0006_pricing')]

    initial = False
    #: CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    operations = [
        ops.AddField(
            model_name='Blast',
            name='local_time',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Blast',
            name='timezone',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Blast',
            name='due_times',
            field=fields.JSONField(null=True),
        ),
        ops.AddField(
            model_name='Blast',
            name='quiet_hours',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddField(
            model_name='Recipient',
            name='zone',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Recipient',
            name='due_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunPython(create_index, drop_index),
    ]
