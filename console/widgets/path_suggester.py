"""Provides PathSuggester: completion of a file path typed in an `Input`, over the directory of what was typed."""

from __future__ import annotations

import asyncio
import os

from textual.suggester import Suggester

#: Entries read from one directory at most (a huge directory must not stall the typing).
MAX_ENTRIES = 5000


class PathSuggester(Suggester):
    """Suggests the first entry of the typed directory that starts with the typed name (right arrow accepts it):
    subdirectories end with `/`, and files are those with one of `suffixes` (all files when empty). Hidden entries
    are offered only once a `.` is typed. `~` is understood and kept as typed.
    """

    def __init__(self, suffixes: tuple[str, ...] = (".csv",)) -> None:
        # Not cached: the directory may change while the screen is open. Paths are case sensitive.
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = tuple(s.casefold() for s in suffixes)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(self.complete, value)

    def complete(self, value: str) -> str | None:
        """The completed path for `value`, or None when nothing (more) matches."""
        directory, prefix = os.path.split(os.path.expanduser(value))
        matches: list[tuple[bool, str]] = []  # (is a file, name): directories first
        try:
            with os.scandir(directory or ".") as entries:
                for n, entry in enumerate(entries):
                    if n >= MAX_ENTRIES:
                        break
                    name = entry.name
                    if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
                        continue
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        continue
                    if is_dir:
                        matches.append((False, name + "/"))
                    elif not self.suffixes or name.casefold().endswith(self.suffixes):
                        matches.append((True, name))
        except OSError:
            return None
        if not matches:
            return None
        rest = min(matches)[1][len(prefix) :]
        return value + rest if rest else None
