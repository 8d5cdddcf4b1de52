"""The README stays true: its configuration table is the settings' own, and its quickstart commands exist."""

from __future__ import annotations

import os
from pathlib import Path

from shared.config import config_table_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_table_matches_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- config-table:start")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end].strip() == config_table_markdown().strip(), (
        "README configuration table is stale: paste shared.config.config_table_markdown()"
    )


def test_quickstart_commands_exist_and_ci_runs_the_test_command() -> None:
    for script in ("scripts/demo", "scripts/test", ".ci/run"):
        path = ROOT / script
        assert path.is_file() and os.access(path, os.X_OK), script
    assert "scripts/test" in (ROOT / ".ci/run").read_text(encoding="utf-8")
