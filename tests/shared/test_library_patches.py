"""The patches on libraries' internals (shared/tortoise_guard.py, console/widgets/footer.py) apply only to the
versions they were tested on: these tests fail when the patched internals change (a new release of the library),
when pyproject.toml or requirements.lock stops pinning the tested minor version, or when an untested version is
patched anyway."""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen
from textual.widgets import Footer
from tortoise.backends.base.client import TransactionContextPooled

from console.widgets import footer
from shared import tortoise_guard
from shared.versions import is_tested, minor_of

ROOT = Path(__file__).parent.parent.parent

#: sha256 (first 16 hex digits) of the source of each method the patches wrap or copy, as the tested versions
#: define them. A mismatch means the library changed there: re-read the patch against the new source, test it
#: (tests/daemon/test_db_outage.py, the console tests), then update TESTED_MINOR, the pins and these digests.
TORTOISE_SOURCES = {
    "TransactionContextPooled.__aenter__": "aab85fd1e6ac5f6d",
    "TransactionContextPooled.__aexit__": "887994b45c7c1fbf",
    "SqliteTransactionContext.__aenter__": "0fb0ed89e66c8595",
}
TEXTUAL_SOURCES: dict[str, tuple[Callable[..., Any], str]] = {
    "Footer.bindings_changed": (Footer.bindings_changed, "eb88714081bd2305"),
    "Footer.compose": (Footer.compose, "8514ae6622cb1844"),
    "Screen.active_bindings": (Screen.active_bindings.fget, "511c420b9cbd94b2"),  # type: ignore[attr-defined]
}


def digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def pinned(distribution: str) -> tuple[str, str]:
    """(the pyproject.toml requirement, the requirements.lock version) of `distribution`."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirement = next(d for d in deps if re.match(rf"{re.escape(distribution)}\b", d))
    lock = (ROOT / "requirements.lock").read_text()
    match = re.search(rf"^{re.escape(distribution)}==(\S+)$", lock, re.M)
    assert match is not None, f"{distribution} is not in requirements.lock"
    return requirement, match.group(1)


def test_the_tortoise_internals_the_guard_wraps_are_the_tested_ones() -> None:
    found = {name: digest(method) for name, method in tortoise_guard.ORIGINALS.items()}
    assert found == TORTOISE_SOURCES


def test_the_textual_internals_the_footer_overrides_are_the_tested_ones() -> None:
    found = {name: digest(function) for name, (function, _) in TEXTUAL_SOURCES.items()}
    assert found == {name: expected for name, (_, expected) in TEXTUAL_SOURCES.items()}


@pytest.mark.parametrize(
    ("distribution", "tested"),
    [("tortoise-orm", tortoise_guard.TESTED_MINOR), ("textual", footer.TESTED_MINOR)],
)
def test_pyproject_and_the_lock_pin_the_tested_minor_version(distribution: str, tested: str) -> None:
    requirement, locked = pinned(distribution)
    major, minor = tested.split(".")
    assert f"<{major}.{int(minor) + 1}" in requirement.replace(" ", ""), requirement
    assert minor_of(locked) == tested


def test_both_patches_apply_to_the_installed_versions() -> None:
    assert tortoise_guard.APPLIES and footer.APPLIES
    tortoise_guard.guard_transaction_enter()
    tortoise_guard.guard_transaction_enter()  # idempotent: wraps the originals once
    assert getattr(TransactionContextPooled.__aenter__, "_blast_guarded", False)
    assert (
        TransactionContextPooled.__aexit__
        is not tortoise_guard.ORIGINALS["TransactionContextPooled.__aexit__"]
    )


def test_an_untested_version_is_refused_with_one_clear_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.versions"):
        assert not is_tested("textual", "0.1", patch="the footer patch", without="slower screens")
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "textual" in text and "the footer patch was tested on 0.1.x only: it is not applied" in text
    assert "(slower screens)" in text
    assert is_tested("textual", footer.TESTED_MINOR, patch="p", without="w")
