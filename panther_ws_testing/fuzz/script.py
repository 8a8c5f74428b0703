"""The test a conversation is printed as: lines added by each step as it runs.

A step says what it did in the words of a test (``await ws1.send('x')``), after its outcome
is known, so an expected refusal reads ``with pytest.raises(WebsocketRejected):`` and a check
is written out only where it failed. The reproduction is then this script in a test file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_INDENT = "    "


class Script:
    """The body of the reproduction, in steps; ``imports`` are what its lines need."""

    def __init__(self) -> None:
        self.body: list[str] = []  # inside ``async with AsyncExitStack() as stack:``
        self.after: list[str] = []  # after every client left
        self.steps = 0
        self.imports: set[str] = set()
        self._last_step_start = 0  # where the last step's lines begin, with what led to it
        self._last_lines_start = 0  # and its own lines
        self._before_step: list[str] = []
        self._before_check: list[str] = []

    def before_step(self, *lines: str) -> None:
        """Lines that lead to the next step (``await settle()``), written only if it is."""
        self._before_step = list(lines)

    def before_check(self, *lines: str) -> None:
        """Lines written before the next check if it fails, unless a step comes first."""
        self._before_check = list(lines)

    def skip_step(self) -> None:
        """The step that was coming did nothing: what led to it goes too."""
        self._before_step = []

    def step(self, *lines: str) -> None:
        """Add one step of the conversation."""
        self.steps += 1
        self._last_step_start = len(self.body)
        self.body.extend(self._before_step)
        self._last_lines_start = len(self.body)
        self.body.extend(lines)
        self._before_step, self._before_check = [], []

    def retract(self) -> None:
        """Take the last step back: it turned out to do nothing, or is written again."""
        self.steps -= 1
        self._before_step = self.body[self._last_step_start : self._last_lines_start]
        del self.body[self._last_step_start :]

    def expect(self, error: str, *, as_name: str | None = None) -> None:
        """Rewrite the last step as raising ``error`` (a name from panther_ws_testing)."""
        lines = self.body[self._last_lines_start :]
        target = f" as {as_name}" if as_name else ""
        del self.body[self._last_lines_start :]
        self.body.append(f"with pytest.raises({error}){target}:")
        self.body.extend(_INDENT + line for line in lines)
        self.needs("panther_ws_testing", error)

    def check(self, *lines: str, after: bool = False) -> None:
        """Add the lines of a check that failed (part of the step before it)."""
        (self.after if after else self.body).extend([*self._before_check, *lines])
        self._before_check = []

    def needs(self, module: str, name: str) -> None:
        self.imports.add(f"from {module} import {name}")

    def reference(self, obj: Any) -> str:
        """The name ``obj`` is called by in the script, importing it from where it lives."""
        module, name = importable_name(obj)
        self.needs(module, name)
        return name


def call(function: str, *args: Any, **kwargs: Any) -> str:
    """``function(args, key=value)`` with values as Python literals; empty keywords left out."""
    parts = [repr(arg) for arg in args]
    parts += [f"{key}={value!r}" for key, value in kwargs.items() if value not in ({}, (), [])]
    return f"{function}({', '.join(parts)})"


def arguments(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in values.items())


def importable_name(obj: Any) -> tuple[str, str]:
    """``(module, name)`` such that ``from module import name`` gives back ``obj``.

    Functions and classes say where they live; other objects (an app instance) are looked
    up among the attributes of the imported modules. Raises ValueError for an object no
    module holds (a lambda, a function defined inside a test), naming it.
    """
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(obj, Callable) and module_name and qualname and "." not in qualname:  # type: ignore[arg-type]
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, qualname, None) is obj:
            return _public_home(module_name, qualname, obj), qualname
    for module_name, module in _modules():
        for name, value in vars(module).items():
            if value is obj and not name.startswith("_"):
                return module_name, name
    raise ValueError(
        f"{obj!r} is not a module-level name, so a reproduction cannot import it; "
        "define it at module level (or pass app_import='module:attribute')"
    )


def _public_home(module_name: str, name: str, obj: Any) -> str:
    """The shortest parent package that exports ``obj`` too: where its users import it."""
    parts = module_name.split(".")
    for length in range(1, len(parts)):
        parent = sys.modules.get(".".join(parts[:length]))
        if parent is not None and getattr(parent, name, None) is obj:
            return ".".join(parts[:length])
    return module_name


def _modules() -> Iterable[tuple[str, Any]]:
    """Importable modules, test modules last: an app is better imported from its home."""
    modules = [
        (name, module)
        for name, module in list(sys.modules.items())
        if module is not None and name != "__main__" and not name.startswith("_")
    ]
    return sorted(modules, key=lambda item: _is_test_module(item[0]))


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"
