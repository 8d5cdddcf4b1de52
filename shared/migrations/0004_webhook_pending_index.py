from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

# The applier claims the oldest unapplied events (WHERE processed_at IS NULL ORDER BY id LIMIT n). The
# (processed_at, id) index cannot give that order (IS NULL is not an equality), so PostgreSQL read and sorted the
# whole backlog, bodies included, on every claim. A partial index on id over the pending rows gives them in order.
# Tortoise's PartialIndex only writes `col = value` conditions, hence raw SQL; the model does not declare the
# index, so the migration state is unchanged. On PostgreSQL it is built CONCURRENTLY: daemons of the previous
# release keep storing webhooks while a large webhook_event table is indexed.

INDEX = "webhook_event_pending"
COLUMNS = "ON webhook_event (id) WHERE processed_at IS NULL"


async def create_index(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        await client.execute_script(f"CREATE INDEX IF NOT EXISTS {INDEX} {COLUMNS}")
        return
    # An interrupted CONCURRENTLY build leaves an invalid index behind: drop it, then build again.
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
    dependencies = [('models', '0003_recipient_sent_at')]

    initial = False
    #: CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    operations = [ops.RunPython(create_index, drop_index)]
