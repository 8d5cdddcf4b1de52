"""Provides ConsoleFooter: Textual's Footer, rebuilt only when the keys it shows really changed.

Opening a screen signals "bindings changed" several times in a row (screen stack, focus, refreshes) and the stock
Footer rebuilds all its keys for each signal, restyling every key each time; that was most of the time it took
to open a blast's detail. Here the rebuilds of one burst are coalesced, and a rebuild that would show the same
keys (same key, label, action, enabled state and tooltip) is skipped.

This is the console's one use of Textual internals: it overrides Footer.bindings_changed (and sets the Footer's
`_bindings_ready` as that method does) and reads Screen.active_bindings. It applies only to the Textual minor
version it was tested on (TESTED_MINOR, pinned in pyproject.toml); with another one the stock Footer behaviour is
kept and a warning says so at import. tests/console/test_footer_patch.py fails when those internals change.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

from shared.versions import is_tested

Signature = tuple[tuple[str, str, str, bool, str, bool], ...]

#: The Textual minor version whose Footer internals the override was written and tested against.
TESTED_MINOR = "8.2"
#: Whether the installed Textual is the tested one (else ConsoleFooter behaves as the stock Footer).
APPLIES = is_tested(
    "textual",
    TESTED_MINOR,
    patch="the console footer's coalesced rebuilds",
    without="screens open more slowly",
)


class ConsoleFooter(Footer):
    """A Footer that recomposes once per burst of binding changes, and not at all when nothing it shows changed."""

    _recompose_queued = False
    _shown: Signature | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not APPLIES:
            super().bindings_changed(screen)
            return
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._recompose_queued:
            self._recompose_queued = True
            self.call_after_refresh(self._recompose_if_changed)

    def _signature(self) -> Signature:
        return tuple(
            (b.key, b.description, b.action, enabled, tooltip, b.show)
            for (_, b, enabled, tooltip) in self.screen.active_bindings.values()
        )

    async def _recompose_if_changed(self) -> None:
        # Cleared before looking: a change after this point queues one more check, so none is lost.
        self._recompose_queued = False
        if not self.is_attached:
            return
        signature = self._signature()
        if signature == self._shown:
            return
        self._shown = signature
        await self.recompose()
