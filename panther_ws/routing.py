"""URL tables like Panther's: ``{'ws/<user_id>/<room_id>/': ChatWebsocket}``, nestable.

Tables are compiled into a segment tree when the App is built, so a bad pattern fails at
start-up with its name rather than at the first connection. Static segments win over
variables; leading/trailing slashes and the query string do not matter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_VARIABLE = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")
_STATIC = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%-]+$")


class URLConfigurationError(ValueError):
    """A URL table entry is malformed; the message names the pattern."""


@dataclass
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    variable: tuple[str, _Node] | None = None
    endpoint: type[Any] | None = None
    pattern: str = ""


@dataclass(frozen=True)
class Route:
    """A resolved path: the endpoint, its pattern and the raw (string) path variables."""

    endpoint: type[Any]
    pattern: str
    path_variables: dict[str, str]


class Router:
    """Resolves request paths against a compiled URL table."""

    def __init__(self, urls: Mapping[str, Any], *, endpoint_base: type[Any]) -> None:
        self._root = _Node()
        self._endpoint_base = endpoint_base
        self.patterns: dict[str, type[Any]] = {}
        self._add_table(urls, prefix="")

    def _add_table(self, urls: Mapping[str, Any], prefix: str) -> None:
        if not isinstance(urls, Mapping):
            raise URLConfigurationError(
                f"a URL table must be a dict of pattern -> endpoint, got {type(urls).__name__}"
            )
        for key, target in urls.items():
            if not isinstance(key, str):
                raise URLConfigurationError(f"URL pattern {key!r} is not a str")
            pattern = "/".join(part for part in (prefix.strip("/"), key.strip("/")) if part)
            if isinstance(target, Mapping):
                self._add_table(target, pattern)
            else:
                self._add_route(pattern, target)

    def _add_route(self, pattern: str, endpoint: Any) -> None:
        if not (isinstance(endpoint, type) and issubclass(endpoint, self._endpoint_base)):
            raise URLConfigurationError(
                f"URL pattern {pattern!r} maps to {endpoint!r}, which is not a "
                f"{self._endpoint_base.__name__} subclass"
            )
        node = self._root
        for segment in _segments(pattern):
            variable = _VARIABLE.match(segment)
            if variable:
                name = variable.group(1)
                if node.variable is None:
                    node.variable = (name, _Node())
                elif node.variable[0] != name:
                    raise URLConfigurationError(
                        f"URL pattern {pattern!r} puts variable <{name}> where another pattern "
                        f"has <{node.variable[0]}>: two variables at one level are ambiguous"
                    )
                node = node.variable[1]
            elif _STATIC.match(segment) and "<" not in segment and ">" not in segment:
                node = node.static.setdefault(segment, _Node())
            else:
                raise URLConfigurationError(
                    f"URL pattern {pattern!r} has an invalid segment {segment!r}; use letters, "
                    "digits, '-', '_', '.', '~' or a whole-segment variable like <user_id>"
                )
        if node.endpoint is not None:
            raise URLConfigurationError(
                f"URL pattern {pattern!r} is defined twice (also as {node.pattern!r})"
            )
        node.endpoint, node.pattern = endpoint, pattern
        self.patterns[pattern] = endpoint

    def resolve(self, path: str) -> Route | None:
        """The route for ``path`` (query string ignored), or None."""
        variables: dict[str, str] = {}
        node = _match(self._root, _segments(path.split("?", 1)[0]), 0, variables)
        if node is None or node.endpoint is None:
            return None
        return Route(node.endpoint, node.pattern, variables)


def _segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def _match(node: _Node, segments: list[str], index: int, variables: dict[str, str]) -> _Node | None:
    if index == len(segments):
        return node if node.endpoint is not None else None
    segment = segments[index]
    static_child = node.static.get(segment)
    if static_child is not None:
        found = _match(static_child, segments, index + 1, variables)
        if found is not None:
            return found
    if node.variable is not None:
        name, child = node.variable
        variables[name] = segment
        found = _match(child, segments, index + 1, variables)
        if found is not None:
            return found
        del variables[name]
    return None
