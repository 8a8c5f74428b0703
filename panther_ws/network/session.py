"""The one session surface shared by the in-memory test client and the network client.

A test body written against :class:`WebsocketSession` runs unchanged against an app in memory
(``panther_ws_testing``) and against a live server (``panther_ws.client``); the difference
is only the transport, as with httpx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, runtime_checkable

import orjson


class WebsocketError(Exception):
    """Base class of the session errors."""


class WebsocketRejected(WebsocketError):
    """The server refused the connection before accepting it.

    ``code``/``reason`` are what the app sent in its ``websocket.close`` (None for a denial
    response or a plain HTTP answer); ``status_code`` is what a client on the wire sees: 403
    for a close before accept, else the HTTP status of the denial response.
    """

    def __init__(
        self,
        *,
        status_code: int,
        code: int | None = None,
        reason: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.reason = reason
        self.headers = headers if headers is not None else []
        self.body = body
        if code is not None:
            detail = f"closed with code {code} before accepting (HTTP {status_code})"
            if reason:
                detail += f", reason {reason!r}"
        else:
            # On the wire a close before accept is a bare 403: the status and the body are
            # all a network client can know.
            detail = f"HTTP {status_code}"
            if body:
                detail += f" {body[:200].decode('utf-8', 'replace')!r}"
        super().__init__(f"the server refused the connection: {detail}")


class WebsocketClosed(WebsocketError):
    """The connection is closed, so the call cannot complete; ``code``/``reason`` say how."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = f"the websocket is closed (code {code}"
        text += f", reason {reason!r})" if reason else ")"
        super().__init__(text)


class ReceiveTimeout(WebsocketError, TimeoutError):
    """Nothing arrived within the timeout; the message says what the session saw so far."""


@runtime_checkable
class WebsocketSession(Protocol):
    """What every client session offers, in memory or on the network."""

    @property
    def subprotocol(self) -> str | None: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...

    async def send(self, data: Any) -> None: ...

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None: ...

    async def receive(self, *, timeout: float | None = None) -> str | bytes: ...

    async def receive_nothing(self, *, timeout: float = 0.1) -> None: ...

    async def receive_text(self, *, timeout: float | None = None) -> str: ...

    async def receive_bytes(self, *, timeout: float | None = None) -> bytes: ...

    async def receive_json(self, *, timeout: float | None = None) -> Any: ...

    async def ping(self, payload: bytes = b"") -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    async def wait_closed(self, *, timeout: float | None = None) -> tuple[int, str]: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


class TypedReceiveMixin:
    """The typed sends and receives, ``receive_nothing`` and ``async for``, written once.

    Both sessions inherit it and implement ``send`` and ``receive``; ``_iteration_timeout``
    is the per-message wait of ``async for`` (None: the session's own timeout).
    """

    _iteration_timeout: float | None = None

    async def send(self, data: Any) -> None:
        raise NotImplementedError

    async def receive(self, *, timeout: float | None = None) -> str | bytes:
        raise NotImplementedError

    async def send_text(self, data: str) -> None:
        if not isinstance(data, str):
            raise TypeError(f"send_text() takes a str, got {type(data).__name__}: {data!r:.60}")
        await self.send(data)

    async def send_bytes(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"send_bytes() takes bytes, got {type(data).__name__}: {data!r:.60}")
        await self.send(bytes(data))

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as compact JSON, in a text frame or (``mode="binary"``) a binary one.

        Unlike ``send``, a ``str`` is JSON too: ``send_json("")`` sends ``""``.
        """
        if mode not in ("text", "binary"):
            raise ValueError(f"send_json() mode must be 'text' or 'binary', got {mode!r}")
        encoded = orjson.dumps(data)
        await self.send(encoded.decode() if mode == "text" else encoded)

    async def receive_nothing(self, *, timeout: float = 0.1) -> None:
        """Fail if a message arrives within ``timeout`` seconds; a close is not a message.

        The wait is a single receive with that timeout, not a poll: it returns as soon as
        the connection closes.
        """
        try:
            data = await self.receive(timeout=timeout)
        except (ReceiveTimeout, WebsocketClosed):
            return
        raise AssertionError(f"expected no message within {timeout} s, received {data[:60]!r}")

    async def receive_text(self, *, timeout: float | None = None) -> str:
        data = await self.receive(timeout=timeout)
        if not isinstance(data, str):
            raise TypeError(f"expected a text message, received binary {data[:60]!r}")
        return data

    async def receive_bytes(self, *, timeout: float | None = None) -> bytes:
        data = await self.receive(timeout=timeout)
        if not isinstance(data, bytes):
            raise TypeError(f"expected a binary message, received text {data[:60]!r}")
        return data

    async def receive_json(self, *, timeout: float | None = None) -> Any:
        data = await self.receive(timeout=timeout)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON message, received {data[:60]!r}") from exc

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        # As in the websockets library: a normal close (1000/1001) ends the loop; any
        # other close is an error the caller should see.
        while True:
            try:
                yield await self.receive(timeout=self._iteration_timeout)
            except WebsocketClosed as closed:
                if closed.code in (1000, 1001):
                    return
                raise
