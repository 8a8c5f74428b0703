"""The core must stay sans-IO: no module under panther_ws/protocol imports an event loop or I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import panther_ws.protocol

FORBIDDEN = {"asyncio", "anyio", "trio", "socket", "selectors", "threading"}
PROTOCOL_DIR = Path(panther_ws.protocol.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted(PROTOCOL_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_protocol_module_imports_nothing_async(module: Path) -> None:
    assert _imported_roots(module) & FORBIDDEN == set()
