"""Provides the HTTP API's tables: its Bearer tokens (stored as hashes) and the results of idempotent POSTs."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class ApiToken(Model):
    """A Bearer token of the HTTP API (the token itself is shown once at creation and never stored)."""

    id = fields.IntField(primary_key=True)
    #: Who uses it (e.g. crm), named api:NAME in the audit log.
    name = fields.CharField(max_length=64, unique=True)
    #: operator (read and change) or viewer (read only).
    role = fields.CharField(max_length=16)
    #: sha256 of the token, hex.
    token_hash = fields.CharField(max_length=64, unique=True)
    #: The token's first characters, so that an operator can tell tokens apart in `token list`.
    prefix = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=128)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"


class ApiIdempotency(Model):
    """The first successful answer to a POST made with an Idempotency-Key, replayed when the POST is retried."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=200, unique=True)
    #: Method and path of the first request (POST /api/v1/blasts): the key is refused for another request.
    request = fields.CharField(max_length=300)
    status = fields.IntField()
    #: The JSON answer, as sent.
    body = fields.TextField()
    token_name = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "api_idempotency"
