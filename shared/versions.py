"""Provides the version check of the patches on libraries' internals (shared.tortoise_guard, the console's footer):
each applies only to the library minor version it was tested on, and says once, at import, when it is not."""

from __future__ import annotations

import logging
from importlib.metadata import version

log = logging.getLogger(__name__)


def minor_of(full: str) -> str:
    """The minor version of a version string: "1.1.9" -> "1.1"."""
    return ".".join(full.split(".")[:2])


def is_tested(distribution: str, tested_minor: str, *, patch: str, without: str) -> bool:
    """Whether the installed `distribution` is the minor version `patch` was tested on; if not, one warning
    naming both versions and what goes `without` the patch."""
    installed = version(distribution)
    if minor_of(installed) == tested_minor:
        return True
    log.warning(
        "%s %s is installed but %s was tested on %s.x only: it is not applied (%s); install %s %s.x, as "
        "pyproject.toml pins",
        distribution,
        installed,
        patch,
        tested_minor,
        without,
        distribution,
        tested_minor,
    )
    return False
