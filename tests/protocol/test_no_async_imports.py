"""The core must stay sans-IO and self-contained.

No module under panther_ws/protocol imports an event loop or I/O, nor any part of panther_ws
outside the core: custom servers embed it alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import panther_ws.protocol

FORBIDDEN = {"asyncio", "anyio", "trio", "socket", "selectors", "threading"}
PROTOCOL_DIR = Path(panther_ws.protocol.__file__).parent


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            assert node.module is not None
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(PROTOCOL_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_protocol_module_imports_nothing_async(module: Path) -> None:
    assert {name.split(".")[0] for name in _imported(module)} & FORBIDDEN == set()


@pytest.mark.parametrize("module", sorted(PROTOCOL_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_protocol_module_imports_nothing_of_panther_ws_outside_the_core(module: Path) -> None:
    outside = {
        name
        for name in _imported(module)
        if name.split(".")[0] == "panther_ws" and not name.startswith("panther_ws.protocol")
    }
    assert outside == set()
