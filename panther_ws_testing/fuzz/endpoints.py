"""What the machine may do to one endpoint: how to reach it, what to send, what it promises.

An :class:`Endpoint` is a URL pattern plus strategies, so the machine can draw a concrete
request (path variables filled in, query, headers, subprotocols) and messages for it. Both
pattern spellings are understood: panther_ws's ``/ws/<room>/`` and Starlette's ``/ws/{room}``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from panther_ws_testing import strategies

_VARIABLE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>|\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def path_variable_values() -> st.SearchStrategy[str]:
    """The default value of a path variable: a short slug, e.g. ``'a0'``."""
    return st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@dataclass(frozen=True)
class ConnectRequest:
    """One drawn connection request, as ``client.connect()`` takes it."""

    path: str
    query_params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    subprotocols: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """One websocket endpoint of the app under test.

    ``variables`` maps a path variable to the strategy of its values (default: short slugs).
    ``replies=True`` promises an answer to every message: a message left unanswered for the
    client's ``timeout`` is a failure (the handler hangs or forgets a kind of message).
    ``close_codes`` are the codes the app may close with (None: any code an endpoint may
    send); another code is a failure. For example::

        Endpoint("/ws/chat/<room>/", query_params=st.fixed_dictionaries({"name": st.just("a")}),
                 messages=strategies.text_messages(max_size=20), replies=True)
    """

    path: str
    variables: Mapping[str, st.SearchStrategy[str]] = field(default_factory=dict)
    messages: st.SearchStrategy[Any] = field(
        default_factory=lambda: strategies.messages(max_size=64)
    )
    # None: none sent, and nothing drawn (each draw costs an example time).
    query_params: st.SearchStrategy[Mapping[str, str]] | None = None
    headers: st.SearchStrategy[Mapping[str, str]] | None = None
    subprotocols: st.SearchStrategy[list[str]] | None = None
    replies: bool = False
    close_codes: Collection[int] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.variables) - set(self.variable_names())
        if unknown:
            raise ValueError(
                f"Endpoint {self.path!r} has no path variable {sorted(unknown)[0]!r}; "
                f"its variables are {self.variable_names()}"
            )

    def variable_names(self) -> list[str]:
        return [m.group(1) or m.group(2) for m in _VARIABLE.finditer(self.path)]

    @cached_property
    def requests(self) -> st.SearchStrategy[ConnectRequest]:
        """Concrete requests to this endpoint, shrinking towards the simplest one."""
        names = self.variable_names()
        parts: dict[str, st.SearchStrategy[Any]] = {
            name: self.variables.get(name, path_variable_values()) for name in names
        }
        for part in ("query_params", "headers", "subprotocols"):
            strategy = getattr(self, part)
            if strategy is not None:
                parts[f" {part}"] = strategy  # a space: no path variable is named so
        if not parts:
            return st.just(self._request({}))
        return st.fixed_dictionaries(parts).map(self._request)

    def _request(self, drawn: Mapping[str, Any]) -> ConnectRequest:
        def fill(match: re.Match[str]) -> str:
            return quote(drawn[match.group(1) or match.group(2)], safe="")

        path = "/" + _VARIABLE.sub(fill, self.path).lstrip("/")
        return ConnectRequest(
            path,
            dict(drawn.get(" query_params", {})),
            dict(drawn.get(" headers", {})),
            tuple(drawn.get(" subprotocols", ())),
        )
