"""``GenericWebsocket``: one instance per connection, written as in Panther.

Subclass it, validate in ``connect()`` and ``accept()``, answer in ``receive()``, clean up in
``disconnect()``. Everything here talks ASGI to the server; the App decides when the hooks run.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from panther_ws.headers import Headers

if TYPE_CHECKING:
    from panther_ws.app import App

ASGIScope = dict[str, Any]


def encode_outgoing(data: Any) -> dict[str, Any]:
    """The ASGI send message for ``data``: str as text, bytes as binary, else compact JSON."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    if isinstance(data, bytes | bytearray | memoryview):
        return {"type": "websocket.send", "bytes": bytes(data)}
    return {"type": "websocket.send", "text": orjson.dumps(data).decode()}


class GenericWebsocket:
    """Base class of every websocket endpoint.

    ``auth`` is an async callable (or a class whose instances are) taking the connection and
    returning the user; raising rejects with 1008. ``permissions`` holds async callables (or
    classes) taking the connection and returning a bool; one False rejects with 1008.
    """

    auth: Any = None
    permissions: Any = ()

    def __init__(self, scope: ASGIScope, send: Any, app: App, path_variables: dict[str, Any]):
        self.scope = scope
        self._asgi_send = send
        self.app = app
        self.path: str = scope["path"]
        self.path_variables = path_variables
        self.client = tuple(scope["client"]) if scope.get("client") else None
        self.server = tuple(scope["server"]) if scope.get("server") else None
        self.subprotocols: list[str] = list(scope.get("subprotocols") or ())
        self.user: Any = None
        self.connection_id: str | None = None
        self.is_connected = False
        self.is_rejected = False
        self.is_closed = False
        self._headers: Headers | None = None
        self._query_params: dict[str, str] | None = None

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.scope.get("headers") or ())
        return self._headers

    @property
    def query_params(self) -> dict[str, str]:
        if self._query_params is None:
            query = self.scope.get("query_string", b"").decode("latin-1")
            self._query_params = dict(parse_qsl(query, keep_blank_values=True))
        return self._query_params

    # -- hooks to override -----------------------------------------------------------------

    # ``*args: Any, **kwargs: Any`` lets a typed subclass declare exactly its path variables
    # (``connect(self, room_id: int)``) without breaking mypy's override check.
    async def connect(self, *args: Any, **path_variables: Any) -> None:
        """Validate the connection and call ``accept()``; not accepting rejects it.

        Path variables arrive as keyword arguments, converted by this method's annotations.
        """

    async def receive(self, data: str | bytes) -> None:
        """Called with every message, in order."""

    async def disconnect(self, code: int, reason: str) -> None:
        """Called once when an accepted connection ends, whoever closed it."""

    # -- actions ---------------------------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        if self.is_connected or self.is_rejected or self.is_closed:
            raise RuntimeError(
                f"accept() called twice or after close on {self.path!r} "
                f"(connection_id {self.connection_id})"
            )
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
            ]
        await self._asgi_send(message)
        self.connection_id = self.app.worker_id + secrets.token_hex(10)
        self.is_connected = True
        self.app._register(self)

    async def send(self, data: Any = None) -> None:
        """Send ``str`` as text, ``bytes`` as binary, anything else as compact JSON text."""
        await self._asgi_send(encode_outgoing(data))

    async def send_text(self, data: str) -> None:
        await self._asgi_send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self._asgi_send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (after accept) or reject (before it); later calls do nothing."""
        if self.is_closed or self.is_rejected:
            return
        if self.is_connected:
            self.is_closed = True
        else:
            self.is_rejected = True
        await self._asgi_send({"type": "websocket.close", "code": code, "reason": reason})

    async def join_group(self, group: str) -> None:
        await self.app._join_group(self, group)

    async def leave_group(self, group: str) -> None:
        await self.app._leave_group(self, group)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} connection_id={self.connection_id}>"
