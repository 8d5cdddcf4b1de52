"""Services never use each other's private names (import-linter cannot say this; the layers are in pyproject.toml).

A name starting with `_` in `shared/services/x.py` is x's own business: another service that needs it asks x to
make it public. Checked by reading the sources, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parent.parent / "shared" / "services"
PACKAGE = "shared.services"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _within(module: str, own: str) -> bool:
    return module == own or module.startswith(f"{own}.")


def private_uses(path: Path) -> list[str]:
    """`from shared.services.other import _name`, and `other._name` where `other` is an imported service."""
    # A module of a service package (shared/services/webhooks/apply.py) belongs to that service: its siblings may
    # share names with it, other services may not.
    parts = (
        path.relative_to(SERVICES).with_suffix("").parts if path.is_relative_to(SERVICES) else (path.stem,)
    )
    own = f"{PACKAGE}.{parts[0]}"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> service module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            for alias in node.names:
                if node.module == PACKAGE:  # from shared.services import other
                    aliases[alias.asname or alias.name] = f"{PACKAGE}.{alias.name}"
                elif (
                    node.module.startswith(f"{PACKAGE}.")
                    and not _within(node.module, own)
                    and _private(alias.name)
                ):
                    found.append(f"{path.name}:{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{PACKAGE}.") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and not _within(aliases[node.value.id], own)
            and _private(node.attr)
        ):
            found.append(f"{path.name}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return found


def test_services_do_not_use_each_others_private_names() -> None:
    modules = sorted(SERVICES.rglob("*.py"))
    assert len(modules) > 5
    assert [use for path in modules for use in private_uses(path)] == []


def test_the_check_sees_both_forms(tmp_path: Path) -> None:
    path = tmp_path / "preview.py"
    path.write_text(
        "from shared.services.blasts import Rejected, _open_csv\n"
        "from shared.services import sending\n"
        "from shared.services.preview import _own\n"
        "sending._claimable(1)\n"
        "sending.claim_page()\n",
        encoding="utf-8",
    )
    assert private_uses(path) == [
        "preview.py:1: from shared.services.blasts import _open_csv",
        "preview.py:4: shared.services.sending._claimable",
    ]
