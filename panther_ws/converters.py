"""Path variables converted by the annotations of ``connect()``: ``user_id: int`` gets an int."""

from __future__ import annotations

import inspect
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class PathVariableError(ValueError):
    """A path segment does not convert to its annotated type; rejects with 1008."""


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(text)


_CONVERTERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    int: (int, "an int"),
    float: (float, "a float"),
    bool: (_to_bool, "a bool (true/false/1/0)"),
    str: (str, "a str"),
    uuid.UUID: (uuid.UUID, "a UUID"),
}


@dataclass(frozen=True)
class ConnectSignature:
    """What ``connect()`` accepts: typed parameters and whether it takes ``**kwargs``."""

    converters: dict[str, tuple[Callable[[str], Any], str]]
    takes_kwargs: bool

    @classmethod
    def of(cls, connect: Callable[..., Any]) -> ConnectSignature:
        signature = inspect.signature(connect)
        try:
            hints = typing.get_type_hints(connect)
        except Exception:  # unresolvable forward references: treat as unannotated
            hints = {}
        converters = {}
        takes_kwargs = False
        for name, parameter in signature.parameters.items():
            if name == "self":
                continue
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                takes_kwargs = True
                continue
            annotation = hints.get(name, str)
            converters[name] = _CONVERTERS.get(annotation, (str, "a str"))
        return cls(converters, takes_kwargs)

    def accepts(self, name: str) -> bool:
        return self.takes_kwargs or name in self.converters

    def convert(self, raw: dict[str, str]) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for name, text in raw.items():
            convert, description = self.converters.get(name, (str, "a str"))
            try:
                converted[name] = convert(text)
            except ValueError:
                raise PathVariableError(
                    f"path variable {name!r} is {text!r}, not {description}"
                ) from None
        return converted
