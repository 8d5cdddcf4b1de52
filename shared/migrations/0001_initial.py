from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('actor', fields.CharField(description='OS user of the console or "daemon@host".', max_length=128)),
                ('action', fields.CharField(max_length=64)),
                ('entity', fields.CharField(max_length=32)),
                ('entity_id', fields.CharField(db_index=True, max_length=64)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'audit_log', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Suppression',
            fields=[
                ('phone', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=20)),
                ('reason', fields.CharField(default='', max_length=200)),
                ('source', fields.CharField(default='operator', max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'suppression', 'app': 'models', 'pk_attr': 'phone', 'table_description': 'A number that must not be sent to (opted out, or added by an operator).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Template',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('meta_id', fields.CharField(null=True, unique=True, max_length=64)),
                ('name', fields.CharField(max_length=512)),
                ('language', fields.CharField(max_length=16)),
                ('category', fields.CharField(default='UTILITY', max_length=32)),
                ('status', fields.CharEnumField(default=TemplateStatus.SUBMITTED, description='SUBMITTED: SUBMITTED\nAPPROVED: APPROVED\nREJECTED: REJECTED\nPAUSED: PAUSED\nDISABLED: DISABLED\nIN_APPEAL: IN_APPEAL\nPENDING_DELETION: PENDING_DELETION\nDELETED: DELETED\nARCHIVED: ARCHIVED\nLIMIT_EXCEEDED: LIMIT_EXCEEDED', enum_type=TemplateStatus, max_length=24)),
                ('parameter_format', fields.CharField(default='POSITIONAL', max_length=16)),
                ('components', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('parameter_names', fields.JSONField(default=list, description='Body parameter names in order ("1", "2", … for positional templates).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('parameter_count', fields.IntField(default=0)),
                ('rejection_reason', fields.TextField(null=True, unique=False)),
                ('quality_score', fields.CharField(null=True, max_length=16)),
                ('last_synced_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'template', 'app': 'models', 'unique_together': (('name', 'language'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Blast',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('template', fields.ForeignKeyField('models.Template', source_field='template_id', db_constraint=True, to_field='id', related_name='blasts', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=BlastStatus.DRAFT, db_index=True, description='DRAFT: DRAFT\nSCHEDULED: SCHEDULED\nPROCESSING: PROCESSING\nPAUSED: PAUSED\nCOMPLETED: COMPLETED\nFAILED: FAILED\nCANCELLED: CANCELLED', enum_type=BlastStatus, max_length=16)),
                ('send_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('valid_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('constants', fields.JSONField(default=dict, description='Parameters that are the same for every recipient (header/button constants), by column name.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('client_key', fields.CharField(null=True, unique=True, description='Idempotency key of `create`: creating again with the same key returns this blast.', max_length=200)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('error_code', fields.IntField(null=True)),
                ('created_by', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('generation', fields.IntField(default=0, description='Bumped by every edit/reschedule/resume, so a stale wake-up or chunk can tell it is outdated.')),
                ('total', fields.IntField(default=0)),
                ('n_pending', fields.IntField(default=0)),
                ('n_sending', fields.IntField(default=0)),
                ('n_sent', fields.IntField(default=0)),
                ('n_delivered', fields.IntField(default=0)),
                ('n_read', fields.IntField(default=0)),
                ('n_failed', fields.IntField(default=0)),
                ('n_cancelled', fields.IntField(default=0)),
                ('n_skipped', fields.IntField(default=0)),
                ('n_unknown', fields.IntField(default=0)),
            ],
            options={'table': 'blast', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Recipient',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('blast', fields.ForeignKeyField('models.Blast', source_field='blast_id', db_constraint=True, to_field='id', related_name='recipients', on_delete=OnDelete.CASCADE)),
                ('phone', fields.CharField(description='E.164 with the leading +.', max_length=20)),
                ('params', fields.JSONField(default=dict, description='Template parameters of this recipient, by name or position ("1", "2" …), plus header_N / button_I_N.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('row', fields.IntField(default=0, description='Row of the CSV it came from (1 = first data row).')),
                ('status', fields.CharEnumField(default=RecipientStatus.PENDING, description='PENDING: PENDING\nSENDING: SENDING\nSENT: SENT\nDELIVERED: DELIVERED\nREAD: READ\nFAILED: FAILED\nCANCELLED: CANCELLED\nSKIPPED: SKIPPED\nUNKNOWN: UNKNOWN', enum_type=RecipientStatus, max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('wamid', fields.CharField(null=True, max_length=128)),
                ('wa_id', fields.CharField(null=True, max_length=32)),
                ('error_code', fields.IntField(null=True)),
                ('error_text', fields.TextField(null=True, unique=False)),
                ('lease_owner', fields.CharField(null=True, max_length=128)),
                ('lease_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'recipient', 'app': 'models', 'unique_together': (('blast', 'phone'),), 'indexes': [Index(fields=['blast_id', 'status', 'id'], name='recipient_next_page'), Index(fields=['wamid'], name='recipient_wamid'), Index(fields=['phone'], name='recipient_phone')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
