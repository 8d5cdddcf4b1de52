"""Provides the banner under the header: unreachable services in red, then sandbox, read-only and frozen
notes.

It mirrors the app's `banner_errors` and `banner_notes` (the app decides what they say).
"""

from __future__ import annotations

from textual.widgets import Static


class Banner(Static):
    """One line that is hidden when there is nothing to say; red when something is unreachable."""

    DEFAULT_CSS = """
    Banner { height: auto; display: none; padding: 0 1; background: $warning 40%; text-style: bold; }
    Banner.-shown { display: block; }
    Banner.-error { background: $error; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "banner_errors", self._render_banner, init=True)
        self.watch(self.app, "banner_notes", self._render_banner, init=True)

    def _render_banner(self) -> None:
        errors: tuple[str, ...] = getattr(self.app, "banner_errors", ())
        notes: tuple[str, ...] = getattr(self.app, "banner_notes", ())
        parts = [*errors, *notes]
        self.set_class(bool(parts), "-shown")
        self.set_class(bool(errors), "-error")
        self.update("  ·  ".join(parts))
