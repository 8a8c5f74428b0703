"""``GenericWebsocket``: one instance per connection, written as in Panther.

Subclass it, validate in ``connect()`` and ``accept()``, answer in ``receive()``, clean up in
``disconnect()``. Everything here talks ASGI to the server; the App decides when the hooks run,
and the connection's worker holds it while it is live.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import parse_qsl

from panther_ws.headers import Headers
from panther_ws.hosting.types import Scope, Send
from panther_ws.outgoing import websocket_send
from panther_ws.protocol import HeadersInput, normalize_headers
from panther_ws.worker import Worker


class Host(Protocol):
    """The App that builds a handler, as the handler sees it: the worker it lives on.

    A Protocol, so that app.py (which builds handlers) imports this module and never the
    other way round.
    """

    @property
    def worker(self) -> Worker: ...


class GenericWebsocket:
    """Base class of every websocket endpoint.

    ``auth`` is an async callable (or a class whose instances are) taking the connection and
    returning the user; raising rejects with 1008. ``permissions`` holds async callables (or
    classes) taking the connection and returning a bool; one False rejects with 1008.
    """

    auth: Any = None
    permissions: Any = ()

    def __init__(self, scope: Scope, send: Send, app: Host, path_variables: dict[str, Any]):
        self.scope = scope
        self.asgi_send = send  # public, as in Panther: the raw ASGI send of this connection
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
        self, subprotocol: str | None = None, headers: HeadersInput | None = None
    ) -> None:
        if self.is_connected or self.is_rejected or self.is_closed:
            raise RuntimeError(
                f"accept() called twice or after close on {self.path!r} "
                f"(connection_id {self.connection_id})"
            )
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = normalize_headers(headers, call="accept()")
        await self.asgi_send(message)
        self.connection_id = self.app.worker.register(self)
        self.is_connected = True

    async def send(self, data: Any = None) -> None:
        """Send ``str`` as text, ``bytes`` as binary, anything else as compact JSON text."""
        await self.asgi_send(websocket_send(data))

    async def send_text(self, data: str) -> None:
        await self.asgi_send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.asgi_send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (after accept) or reject (before it); later calls do nothing."""
        if self.is_closed or self.is_rejected:
            return
        if self.is_connected:
            self.is_closed = True
        else:
            self.is_rejected = True
        await self.asgi_send({"type": "websocket.close", "code": code, "reason": reason})

    async def join_group(self, group: str) -> None:
        await self.app.worker.join(group, self)

    async def leave_group(self, group: str) -> None:
        await self.app.worker.leave(group, self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} connection_id={self.connection_id}>"
