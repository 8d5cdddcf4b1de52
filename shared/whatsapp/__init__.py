"""Provides the WhatsApp side of blast: provider interface, cloud client, sandbox and the error table."""

from __future__ import annotations

from shared.whatsapp.base import (
    ErrorClass,
    GraphApiError,
    GraphError,
    PhoneNumberInfo,
    SendAccepted,
    SendFailed,
    SendResult,
    TemplateInfo,
    TemplateSubmitted,
    WhatsAppProvider,
)
from shared.whatsapp.cloud import CloudClient
from shared.whatsapp.errors import (
    ERROR_TABLE,
    classify,
    classify_response,
    classify_status_errors,
    classify_webhook_error,
    pair_rate_backoff_s,
    rule_for,
)
from shared.whatsapp.factory import build_provider, require_cloud_credentials, webhook_app_secret
from shared.whatsapp.sandbox import SANDBOX_BANNER, SandboxProvider

__all__ = [
    "ERROR_TABLE",
    "SANDBOX_BANNER",
    "CloudClient",
    "ErrorClass",
    "GraphApiError",
    "GraphError",
    "PhoneNumberInfo",
    "SandboxProvider",
    "SendAccepted",
    "SendFailed",
    "SendResult",
    "TemplateInfo",
    "TemplateSubmitted",
    "WhatsAppProvider",
    "build_provider",
    "classify",
    "classify_response",
    "classify_status_errors",
    "classify_webhook_error",
    "pair_rate_backoff_s",
    "require_cloud_credentials",
    "rule_for",
    "webhook_app_secret",
]
