from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_webhooks')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Recipient',
            index=Index(fields=['sent_at', 'phone'], name='recipient_sent_at'),
        ),
    ]
