"""Owns the X-Hub-Signature-256 check of a webhook POST (HMAC-SHA256 of the raw body with the app secret)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

SignatureCheck = Literal["ok", "missing", "invalid"]


def sign(secret: str | bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def check_signature(secret: str | bytes | None, body: bytes, header: str | None) -> SignatureCheck:
    """Check Meta's signature over the raw body in constant time (never over re-serialised JSON).

    Returns:
        "missing" (no header, or no app secret configured: nothing can be trusted), "invalid" or "ok".
    """
    if not header:
        return "missing"
    if not secret:
        return "invalid"
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.digest(key, body, "sha256").hex().encode()  # one-shot HMAC (C), same bytes as `sign`
    given = header.strip().encode("ascii", "replace")
    if given[:7].lower() != b"sha256=":
        return "invalid"
    return "ok" if hmac.compare_digest(expected, given[7:].lower()) else "invalid"
