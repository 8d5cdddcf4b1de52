"""Provides who the audit log names: the OS user of a console or CLI, `daemon@host` for what a daemon does, and
`api:<token>` for the HTTP API (shared.services.tokens)."""

from __future__ import annotations

import getpass
import socket


def current_actor() -> str:
    """The OS user acting (recorded in the audit log)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def daemon_actor(host: str | None = None) -> str:
    """A daemon on `host` (default: this host)."""
    return f"daemon@{host or socket.gethostname()}"
