"""Kept only for shared/services/webhooks.py, which another change is splitting: the events side-channel is
shared.events now. Import from there; delete this module once nothing imports it."""

from shared.events import publish

__all__ = ["publish"]
