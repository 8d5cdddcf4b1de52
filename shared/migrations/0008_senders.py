from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_local_time')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Sender',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('phone_number_id', fields.CharField(unique=True, description="Meta's phone number id (what `--sender` names).", max_length=32)),
                ('waba_id', fields.CharField(description='The WhatsApp Business Account that owns the number (templates are per WABA).', max_length=32)),
                ('token_env', fields.CharField(description="The setting (environment or secrets file) that holds this number's access token.", max_length=64)),
                ('name', fields.CharField(default='', max_length=100)),
                ('display_phone', fields.CharField(default='', max_length=32)),
                ('rate_cap', fields.FloatField(null=True, description="The operator's cap in messages per second (None: Meta's level decides).")),
                ('throughput_level', fields.CharField(null=True, description="Meta's `throughput.level` (STANDARD = 80 msg/s, HIGH = 1,000 msg/s), as last read.", max_length=16)),
                ('quality_rating', fields.CharField(null=True, max_length=16)),
                ('messaging_limit_tier', fields.CharField(null=True, description="The portfolio's `whatsapp_business_manager_messaging_limit` (e.g. TIER_10K), as last read.", max_length=32)),
                ('is_default', fields.BooleanField(default=False, description='The sender of WHATSAPP_PHONE_NUMBER_ID (blasts without a sender use it).')),
                ('checked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'sender', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A sender number: its ids, the name of the setting holding its token (never the token), its rate cap and'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Blast',
            name='senders',
            field=fields.JSONField(null=True, description='Phone number ids of the sender numbers (a pool when several), or None for the default sender.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Recipient',
            name='sender_id',
            field=fields.CharField(null=True, description='The phone number id it is sent from in a blast with senders (set at its first claim and kept on retry).', max_length=32),
        ),
    ]
