from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OrphanStatus',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('wamid', fields.CharField(max_length=128)),
                ('status', fields.CharField(max_length=16)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('recipient_id', fields.BigIntField(null=True, description='Recipient id from biz_opaque_callback_data, when the message carried it.')),
                ('phone', fields.CharField(null=True, max_length=20)),
                ('error_code', fields.IntField(null=True)),
                ('error_text', fields.TextField(null=True, unique=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('next_try_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
            ],
            options={'table': 'orphan_status', 'app': 'models', 'indexes': [Index(fields=['next_try_at'], name='orphan_status_due'), Index(fields=['expires_at'], name='orphan_status_expiry')], 'pk_attr': 'id', 'table_description': 'A message status whose wamid (and callback data) matched no recipient when it was applied.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('body', fields.TextField(description='The body exactly as received (Meta escapes non-ASCII, so it is text).', unique=False)),
                ('processed_at', fields.DatetimeField(null=True, description='Set once applied, or once given up on after too many attempts (then `error` says why).', auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'webhook_event', 'app': 'models', 'indexes': [Index(fields=['processed_at', 'id'], name='webhook_event_todo')], 'pk_attr': 'id', 'table_description': 'One signed webhook POST, stored raw before it is acknowledged and applied later in batches.'},
            bases=['Model'],
        ),
    ]
