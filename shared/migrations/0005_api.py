from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_webhook_pending_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ApiIdempotency',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=200)),
                ('request', fields.CharField(description='Method and path of the first request (POST /api/v1/blasts): the key is refused for another request.', max_length=300)),
                ('status', fields.IntField()),
                ('body', fields.TextField(description='The JSON answer, as sent.', unique=False)),
                ('token_name', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_idempotency', 'app': 'models', 'pk_attr': 'id', 'table_description': 'The first successful answer to a POST made with an Idempotency-Key, replayed when the POST is retried.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, description='Who uses it (e.g. crm), named api:NAME in the audit log.', max_length=64)),
                ('role', fields.CharField(description='operator (read and change) or viewer (read only).', max_length=16)),
                ('token_hash', fields.CharField(unique=True, description='sha256 of the token, hex.', max_length=64)),
                ('prefix', fields.CharField(description="The token's first characters, so that an operator can tell tokens apart in `token list`.", max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(max_length=128)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_token', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A Bearer token of the HTTP API (the token itself is shown once at creation and never stored).'},
            bases=['Model'],
        ),
    ]
