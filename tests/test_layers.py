"""The layout is the architecture: every import points down the layers of DESIGN.md.

1 protocol (sans-IO core) <- 2 hosting <- 3 network <- 4 runtime <- 5 panther_ws_testing.
A module may import its own layer and the ones below; an import upward, even one only for
annotations, would make the lower layer unusable without the higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import panther_ws
import panther_ws_testing

ROOT = Path(panther_ws.__file__).parent.parent
LAYERS = {"protocol": 1, "hosting": 2, "network": 3, "runtime": 4, "testing": 5}
# Top-level modules of panther_ws that are not the runtime: the documented import paths
# of the network layer, and ``python -m panther_ws``.
NETWORK_ENTRY_POINTS = {"server", "client", "__main__"}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "panther_ws_testing":
        return LAYERS["testing"]
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS[parts[1]]
    if len(parts) > 1 and parts[1] in NETWORK_ENTRY_POINTS:
        return LAYERS["network"]
    return LAYERS["runtime"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] in ("panther_ws", "panther_ws_testing")}


SOURCES = sorted(
    [
        *Path(panther_ws.__file__).parent.rglob("*.py"),
        *Path(panther_ws_testing.__file__).parent.rglob("*.py"),
    ]
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_imports_point_down_the_layers(path: Path) -> None:
    own = layer_of(module_name(path))
    upward = {name for name in imports_of(path) if layer_of(name) > own}
    assert upward == set(), f"{module_name(path)} (layer {own}) imports from above: {upward}"


def test_every_layer_has_its_package() -> None:
    for layer in ("protocol", "hosting", "network"):
        assert (Path(panther_ws.__file__).parent / layer / "__init__.py").is_file()


def private_names_imported(path: Path) -> set[str]:
    """Names with a leading underscore that ``path`` takes from another module.

    A private module (``panther_ws_testing._links``) is private to its package and may be
    imported inside it; a private *name* is private to its module.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            module = node.module.split(".")
            names.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_")
                and module[0] in ("panther_ws", "panther_ws_testing")
                and not (path.parent / f"{alias.name}.py").exists()
            )
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    assert private_names_imported(path) == set()


MODULES = {module_name(path): path for path in SOURCES}


def arrows(path: Path) -> set[str]:
    """The modules of ours that ``path`` imports, a package's re-exports (``__init__``) left out."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {name for name in found if name in MODULES and MODULES[name].name != "__init__.py"}


def test_no_import_circles() -> None:
    graph = {name: arrows(path) for name, path in MODULES.items() if path.name != "__init__.py"}
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == []
