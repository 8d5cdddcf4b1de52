from datetime import UTC, datetime
from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Local-time blasts: the latest due time of the blast's due groups that may be sent however late (a group that
# started on time, or every group already due when the operator resumed the blast). A later group found more than
# BLAST_MISSED_CUTOFF past its time pauses the blast instead of going out hours late. Nullable and read by the new
# release only: older releases keep running on this schema (expand only). A blast running at the upgrade has its
# groups already due accepted: the release that ran them had no per-group cutoff.


async def accept_running(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    now = datetime.now(UTC)
    sql = "UPDATE blast SET accepted_due_at = {p} WHERE due_times IS NOT NULL AND status = 'PROCESSING'"
    if client.capabilities.dialect == "postgres":
        await client.execute_query(sql.format(p="$1"), [now])
    else:  # tortoise's text form of a datetime on SQLite
        await client.execute_query(sql.format(p="?"), [now.isoformat(" ")])


async def nothing(apps: Any, schema_editor: Any) -> None:
    return None


class Migration(migrations.Migration):
    dependencies = [('models', '0008_senders')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Blast',
            name='accepted_due_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunPython(accept_running, nothing),
    ]
