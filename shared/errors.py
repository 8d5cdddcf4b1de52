"""Provides the error tree operators read: one line that says what failed, for which object, and what to do."""

from __future__ import annotations


class BlastError(Exception):
    """Base of every error shown to an operator.

    Args:
        message: one line, naming the object and the fix.
        title: a short heading for the TUI's notification.
    """

    title = "Error"

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(BlastError):
    title = "Configuration"


class DatabaseError(BlastError):
    title = "Database"


class SchemaError(DatabaseError):
    title = "Database schema"


class NotFound(BlastError):
    title = "Not found"


class InvalidTransition(BlastError):
    title = "Not allowed"


class ValidationFailed(BlastError):
    title = "Invalid input"


class CsvError(ValidationFailed):
    title = "Recipients file"


class ProviderError(BlastError):
    title = "WhatsApp"


class TooLarge(ValidationFailed):
    """An upload over its size limit (the HTTP API answers 413)."""

    title = "Too large"
