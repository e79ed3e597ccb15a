"""The layers of design.md, checked on the imports of the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pycontainerd"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offenders(folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in sorted(_imports(path)):
            if name.startswith(forbidden) and not name.startswith(allowed):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return bad


@pytest.mark.parametrize(
    "forbidden",
    ["pycontainerd.api.runtime", "pycontainerd.shim_v2", "pycontainerd.client"],
)
def test_services_reach_the_runtime_only_through_its_interface(forbidden: str) -> None:
    """Services are thin adapters: no shim messages, no shim internals, no SDK."""
    assert _offenders("services", (forbidden,)) == []
