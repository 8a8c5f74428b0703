"""The network client: ``async with connect("ws://host/path") as ws:`` on the sans-IO core.

The session has the same surface as the in-memory test client
(:class:`panther_ws.session.WebsocketSession`), so one test body runs against both.
"""

from __future__ import annotations

import math
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import orjson

from panther_ws._pump import Keepalive, OrderedWriter
from panther_ws.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Accepted,
    ClientConnection,
    Closed,
    ConnectionState,
    Event,
    Message,
    Pong,
    ProtocolError,
    Rejected,
)
from panther_ws.session import (
    ReceiveTimeout,
    TypedReceiveMixin,
    WebsocketClosed,
    WebsocketRejected,
)

HeadersArg = Mapping[str, str] | Sequence[tuple[str | bytes, str | bytes]] | None


class ClientSession(TypedReceiveMixin):
    """One live connection. Messages are read by a background task into a queue."""

    _iteration_timeout = math.inf  # a live connection may stay quiet for long

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        core: ClientConnection,
        accepted: Accepted,
        *,
        timeout: float | None,
        close_timeout: float,
        url: str,
    ) -> None:
        self._stream = stream
        self._core = core
        self.subprotocol = accepted.subprotocol
        self.response_headers = list(accepted.headers)
        self.url = url
        self._timeout = timeout
        self._close_timeout = close_timeout
        self._inbox: deque[Message | Closed] = deque()
        self._inbox_ready = anyio.Event()
        self._closed_event: Closed | None = None
        self._closed = anyio.Event()
        self._writer = OrderedWriter(core, stream)
        self._keepalive = Keepalive(core, self._writer)
        self._receiver_waiting = False
        self._closing = False
        self._moved = anyio.Event()

    @property
    def close_code(self) -> int | None:
        return self._closed_event.code if self._closed_event else None

    @property
    def close_reason(self) -> str | None:
        return self._closed_event.reason if self._closed_event else None

    # -- background ----------------------------------------------------------------------

    async def _read(self) -> None:
        await self._process_events()  # frames that arrived together with the 101 response
        while self._core.state is not ConnectionState.CLOSED:
            try:
                data: bytes | None = await self._stream.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                data = None
            except OSError:
                data = None
            try:
                self._core.receive_data(data)
            except ProtocolError:
                break
            await self._process_events()
            if data is None:
                break
        if self._closed_event is None:
            self._on_event(Closed(self._core.close_code or 1006, self._core.close_reason or ""))

    async def _process_events(self) -> None:
        for event in self._core.events():
            if isinstance(event, Closed):
                await self._flush()  # our close frame leaves before anyone hears of it
            self._on_event(event)
            if isinstance(event, Message) and self._core.has_pending_input:
                await self._wait_until_the_user_is_ready()
        await self._flush()

    async def _wait_until_the_user_is_ready(self) -> None:
        """Parse the next frame only once the user has taken this message and waits again.

        So messages the peer sent before a protocol error are answered before we fail the
        connection, and a slow consumer slows the peer rather than growing a queue.
        ``close()`` releases the wait.
        """
        while not self._closing and (self._inbox or not self._receiver_waiting):
            self._moved = anyio.Event()
            await self._moved.wait()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Message):
            self._inbox.append(event)
        elif isinstance(event, Closed):
            self._closed_event = event
            self._inbox.append(event)
            self._closed.set()
        elif isinstance(event, Pong):
            self._keepalive.pong_received()
        self._inbox_ready.set()

    async def _flush(self) -> None:
        try:
            await self._writer.flush()
        except anyio.BrokenResourceError:
            pass  # the peer is gone; the reader reports the close

    async def _keep_alive(self, interval: float, timeout: float) -> None:
        if await self._keepalive.run(interval, timeout):
            await self._stream.aclose()

    # -- the session surface -------------------------------------------------------------

    async def send(self, data: Any) -> None:
        """Send ``str`` as text, ``bytes`` as binary, anything else as compact JSON text."""
        if self._core.state is not ConnectionState.OPEN:
            raise WebsocketClosed(self.close_code or 1006, self.close_reason or "")
        if not isinstance(data, str | bytes):
            data = orjson.dumps(data).decode()
        self._core.send(data)
        await self._flush()

    async def _next(self, timeout: float | None, waiting_for: str) -> Message | Closed:
        limit = self._timeout if timeout is None else timeout
        with anyio.move_on_after(math.inf if limit is None else limit):
            while not self._inbox:
                self._receiver_waiting = True
                self._moved.set()
                self._inbox_ready = anyio.Event()
                try:
                    await self._inbox_ready.wait()
                finally:
                    self._receiver_waiting = False
        if not self._inbox:
            raise ReceiveTimeout(f"waited {limit} s for {waiting_for} from {self.url}")
        event = self._inbox[0]
        if isinstance(event, Message):
            self._inbox.popleft()
        return event

    async def receive(self, *, timeout: float | None = None) -> str | bytes:
        event = await self._next(timeout, "a message")
        if isinstance(event, Closed):
            raise WebsocketClosed(event.code, event.reason)
        return event.data

    async def wait_closed(self, *, timeout: float | None = None) -> tuple[int, str]:
        """Wait until the server closes, discarding messages; returns its ``(code, reason)``."""
        while True:
            event = await self._next(timeout, "the server to close")
            if isinstance(event, Closed):
                return event.code, event.reason

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close and wait (up to ``close_timeout``) for the server's answer."""
        self._closing = True
        self._moved.set()
        if self._core.state is ConnectionState.OPEN:
            self._core.close(code, reason)
            await self._flush()
        with anyio.move_on_after(self._close_timeout):
            await self._closed.wait()

    async def ping(self, payload: bytes = b"") -> None:
        self._core.ping(payload)
        await self._flush()


@asynccontextmanager
async def connect(
    url: str,
    *,
    headers: HeadersArg = None,
    subprotocols: Sequence[str] | None = None,
    timeout: float | None = 10.0,
    open_timeout: float = 10.0,
    close_timeout: float = 5.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ssl: ssl_module.SSLContext | None = None,
    ping_interval: float | None = None,
    ping_timeout: float = 20.0,
    permessage_deflate: bool = True,
) -> AsyncIterator[ClientSession]:
    """Open a websocket to ``url`` (``ws://`` or ``wss://``).

    ``timeout`` bounds each receive, ``open_timeout`` the TCP/TLS connect and the handshake.
    A refused handshake raises :class:`WebsocketRejected` with the HTTP status, headers and
    body.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    header_pairs = _header_pairs(headers)
    with anyio.fail_after(open_timeout):
        stream: anyio.abc.ByteStream
        if secure:
            stream = await anyio.connect_tcp(
                parts.hostname,
                port,
                ssl_context=ssl or ssl_module.create_default_context(),
                tls_standard_compatible=False,
            )
        else:
            stream = await anyio.connect_tcp(parts.hostname, port)
    try:
        core = ClientConnection(
            host_header,
            target,
            headers=header_pairs,
            subprotocols=list(subprotocols or ()),
            max_message_size=max_message_size,
            permessage_deflate=permessage_deflate,
        )
        with anyio.fail_after(open_timeout):
            await stream.send(core.data_to_send())
            accepted = await _read_answer(stream, core, url)
        session = ClientSession(
            stream, core, accepted, timeout=timeout, close_timeout=close_timeout, url=url
        )
        # The body's exception is re-raised outside the task group, with its own type
        # rather than inside an ExceptionGroup (the background tasks never raise).
        error: BaseException | None = None
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(session._read)
            if ping_interval is not None:
                task_group.start_soon(session._keep_alive, ping_interval, ping_timeout)
            try:
                yield session
            except BaseException as exc:
                error = exc
            with anyio.CancelScope(shield=True):
                await session.close()
            task_group.cancel_scope.cancel()
        if error is not None:
            raise error
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def _read_answer(stream: anyio.abc.ByteStream, core: ClientConnection, url: str) -> Accepted:
    while True:
        try:
            data: bytes | None = await stream.receive(65536)
        except anyio.EndOfStream:
            data = None
        core.receive_data(data)
        for event in core.events():
            if isinstance(event, Accepted):
                return event
            if isinstance(event, Rejected):
                raise WebsocketRejected(
                    status_code=event.status_code, headers=list(event.headers), body=event.body
                )
            if isinstance(event, Closed):
                raise WebsocketClosed(1006, f"{url} closed the connection during the handshake")


def _header_pairs(headers: HeadersArg) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (
            name if isinstance(name, bytes) else name.encode("latin-1"),
            value if isinstance(value, bytes) else value.encode("latin-1"),
        )
        for name, value in items
    ]
