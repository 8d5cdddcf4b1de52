from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_api')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PriceCard',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('currency', fields.CharField(description='ISO 4217 code of every rate in the card (IDR, USD …).', max_length=3)),
                ('minor_unit', fields.IntField(description="Digits after the decimal point of the currency's minor unit (2 for IDR and USD, 0 for JPY): totals round to it.")),
                ('effective_on', fields.DateField(db_index=True, description='The first day the card applies to.')),
                ('rates', fields.JSONField(default=dict, description='market -> category -> rate per delivered message (decimal string).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('markets', fields.JSONField(default=dict, description='calling-code prefix (digits, e.g. "62", "1809") -> market.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('tiers', fields.JSONField(default=list, description='[{"market", "category", "volume_from", "volume_to" (null = no limit), "rate"}]: monthly volume tiers.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('source', fields.CharField(default='', description='The file names it was imported from, as given.', max_length=500)),
                ('imported_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('imported_by', fields.CharField(max_length=128)),
            ],
            options={'table': 'price_card', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A dated rate card: prices per market and category, volume tiers, and the calling codes of each market.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='OrphanStatus',
            name='billable',
            field=fields.BooleanField(null=True),
        ),
        ops.AddField(
            model_name='OrphanStatus',
            name='pricing_category',
            field=fields.CharField(null=True, description="The status's `pricing` (see Recipient), kept until the status is applied.", max_length=32),
        ),
        ops.AddField(
            model_name='OrphanStatus',
            name='pricing_model',
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name='OrphanStatus',
            name='pricing_type',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Recipient',
            name='billable',
            field=fields.BooleanField(null=True),
        ),
        ops.AddField(
            model_name='Recipient',
            name='pricing_category',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Recipient',
            name='pricing_model',
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name='Recipient',
            name='pricing_type',
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name='Template',
            name='category_changed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Template',
            name='previous_category',
            field=fields.CharField(null=True, description='The category before Meta last changed it (sync or template_category_update webhook), and when.', max_length=32),
        ),
    ]
