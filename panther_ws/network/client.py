"""The network client: ``async with connect("ws://host/path") as ws:`` on the sans-IO core.

The session has the same surface as the in-memory test client
(:class:`panther_ws.network.session.WebsocketSession`), so one test body runs against both.
"""

from __future__ import annotations

import math
import os
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import orjson

from panther_ws.network.pump import Keepalive, OrderedWriter
from panther_ws.network.session import (
    ReceiveTimeout,
    TypedReceiveMixin,
    WebsocketClosed,
    WebsocketRejected,
)
from panther_ws.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Accepted,
    ClientConnection,
    Closed,
    ConnectionState,
    Event,
    HeadersInput,
    Message,
    Pong,
    ProtocolError,
    Rejected,
    normalize_headers,
)

# What connect() and the test client take as headers: anything the core takes, or None.
HeadersArg = HeadersInput | None


class ClientSession(TypedReceiveMixin):
    """One live connection.

    Under ``async with connect(...)`` a background task reads: pings and the server's close
    are answered while the user is busy, and messages wait in a queue. After
    ``ws = await connect(...)`` there is no task to own one, so the session reads when the
    user waits (``receive``, ``ping``, ``close``): structured concurrency leaves no other
    choice, as in the ``websockets`` library on trio.
    """

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
        self._pings: deque[tuple[bytes, anyio.Event]] = deque()  # awaiting their pong
        self._receiver_waiting = False
        self._closing = False
        self._moved = anyio.Event()
        self._reads_on_demand = True  # until a background reader takes over
        # Frames that came with the 101 wait in the core, parsed by the first read: so a
        # message before a protocol error is answered first, as every later one is.
        self._parse_pending = True

    @property
    def close_code(self) -> int | None:
        return self._closed_event.code if self._closed_event else None

    @property
    def close_reason(self) -> str | None:
        return self._closed_event.reason if self._closed_event else None

    # -- reading -------------------------------------------------------------------------

    async def _read(self) -> None:
        """The background reader of ``async with connect(...)``."""
        while self._closed_event is None:
            await self._read_once()

    async def _read_once(self) -> None:
        """Read what arrived and handle its events; at the end of the stream, report it."""
        if self._parse_pending:  # frames already received (with the 101, or left unparsed)
            self._parse_pending = False
            await self._process_events()
            return
        try:
            data: bytes | None = await self._stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = None
        except OSError:
            data = None
        try:
            self._core.receive_data(data)
        except ProtocolError:
            data = None
        else:
            await self._process_events()
        if data is None and self._closed_event is None:
            self._on_event(Closed(self._core.close_code or 1006, self._core.close_reason or ""))

    async def _process_events(self) -> None:
        for event in self._core.events():
            if isinstance(event, Closed):
                await self._flush()  # our close frame leaves before anyone hears of it
            self._on_event(event)
            if isinstance(event, Message) and self._core.has_pending_input:
                if self._reads_on_demand:
                    # The user answers this before the next frame is parsed: when it next
                    # waits, _read_once() parses on from here without reading.
                    self._parse_pending = True
                    break
                await self._wait_until_the_user_is_ready()
        await self._flush()

    async def _wait_until_the_user_is_ready(self) -> None:
        """Parse the next frame only once the user has taken this message and waits again.

        So messages the peer sent before a protocol error are answered before we fail the
        connection, and a slow consumer slows the peer rather than growing a queue.
        ``close()`` releases the wait. (Reading on demand, the user's own wait parses on.)
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
            for _, answered in self._pings:
                answered.set()  # no pong can come now: ping() sees the close
        elif isinstance(event, Pong):
            self._keepalive.pong_received()
            self._answer_pings(event.payload)
        self._inbox_ready.set()

    def _answer_pings(self, payload: bytes) -> None:
        """A pong answers the ping with its payload and every ping before it (RFC 6455 5.5.3:
        a peer may answer only the most recent one); an unsolicited pong answers nothing."""
        if not any(sent == payload for sent, _ in self._pings):
            return
        while self._pings:
            sent, answered = self._pings.popleft()
            answered.set()
            if sent == payload:
                return

    async def _wait_for(self, event: anyio.Event) -> None:
        """Until ``event`` is set: reading meanwhile if there is no background reader."""
        while not event.is_set():
            if self._reads_on_demand:
                await self._read_once()
            else:
                await event.wait()

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
        self._require_open()
        if not isinstance(data, str | bytes):
            data = orjson.dumps(data).decode()
        self._core.send(data)
        await self._flush()

    def _require_open(self) -> None:
        if self._core.state is not ConnectionState.OPEN:
            raise WebsocketClosed(self.close_code or 1006, self.close_reason or "")

    async def _next(self, timeout: float | None, waiting_for: str) -> Message | Closed:
        limit = self._timeout if timeout is None else timeout
        with anyio.move_on_after(math.inf if limit is None else limit):
            while not self._inbox:
                if self._reads_on_demand:
                    await self._read_once()
                    continue
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
        """Close and wait (up to ``close_timeout``) for the server's answer.

        After ``ws = await connect(...)`` this also closes the socket: call it (in a
        ``finally``) as you would leave ``async with``.
        """
        self._closing = True
        self._moved.set()
        if self._core.state is ConnectionState.OPEN:
            self._core.close(code, reason)
            await self._flush()
        with anyio.move_on_after(self._close_timeout):
            await self._wait_for(self._closed)
        if self._reads_on_demand:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()

    async def ping(self, payload: bytes = b"", *, timeout: float | None = None) -> None:
        """Send a ping and return when its pong has arrived.

        Messages that arrive meanwhile wait for ``receive()``. Raises ``ReceiveTimeout`` if no
        pong comes within ``timeout`` (default: the session's), ``WebsocketClosed`` if the
        connection closes first.
        """
        self._require_open()
        answered = anyio.Event()
        entry = (bytes(payload), answered)
        self._core.ping(entry[0])
        self._pings.append(entry)
        await self._flush()
        limit = self._timeout if timeout is None else timeout
        with anyio.move_on_after(math.inf if limit is None else limit):
            await self._wait_for(answered)
        if entry in self._pings:  # no pong answered it
            self._pings.remove(entry)
            if self._closed_event is not None:
                raise WebsocketClosed(self._closed_event.code, self._closed_event.reason)
            raise ReceiveTimeout(
                f"no pong for ping {payload!r:.60} within {limit} s from {self.url}"
            )


def connect(
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
) -> Connecting:
    """Open a websocket to ``url`` (``ws://`` or ``wss://``).

    ``async with connect(url) as ws:`` closes on leaving; ``ws = await connect(url)`` leaves
    that to ``await ws.close()``. ``timeout`` bounds each receive (and ``ping()``),
    ``open_timeout`` the TCP/TLS connect and the handshake. A refused handshake raises
    :class:`WebsocketRejected` with the HTTP status, headers and body; an unreachable
    server an ``OSError`` that names the URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
    core = ClientConnection(
        parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}",
        (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        headers=normalize_headers(headers or (), call="connect()"),
        subprotocols=list(subprotocols or ()),
        max_message_size=max_message_size,
        permessage_deflate=permessage_deflate,
    )
    secure = parts.scheme == "wss"
    return Connecting(
        url,
        core,
        (parts.hostname, parts.port or (443 if secure else 80)),
        ssl=(ssl or ssl_module.create_default_context()) if secure else None,
        timeout=timeout,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
        ping=(ping_interval, ping_timeout),
    )


class Connecting:
    """What :func:`connect` returns: an awaitable and an async context manager."""

    def __init__(
        self,
        url: str,
        core: ClientConnection,
        address: tuple[str, int],
        *,
        ssl: ssl_module.SSLContext | None,
        timeout: float | None,
        open_timeout: float,
        close_timeout: float,
        ping: tuple[float | None, float],
    ) -> None:
        self._url = url
        self._core = core
        self._address = address
        self._ssl = ssl
        self._timeout = timeout
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._ping_interval, self._ping_timeout = ping
        self._context: AbstractAsyncContextManager[ClientSession] | None = None

    def __await__(self) -> Generator[Any, None, ClientSession]:
        if self._ping_interval is not None:
            raise ValueError(
                "ping_interval needs `async with connect(...)`: the keepalive runs in a task "
                "that the context owns"
            )
        return self._open().__await__()

    async def __aenter__(self) -> ClientSession:
        self._context = self._running()
        return await self._context.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._context is not None, "__aexit__ without __aenter__"
        return await self._context.__aexit__(*exc_info)

    async def _open(self) -> ClientSession:
        """Connect and complete the handshake; the session reads on demand."""
        host, port = self._address
        try:
            with anyio.fail_after(self._open_timeout):
                stream: anyio.abc.ByteStream
                if self._ssl is not None:
                    stream = await anyio.connect_tcp(
                        host, port, ssl_context=self._ssl, tls_standard_compatible=False
                    )
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError as exc:
            raise TimeoutError(
                f"cannot connect to {self._url}: no connection within {self._open_timeout} s"
            ) from exc
        except (OSError, anyio.BrokenResourceError) as exc:
            raise _unreachable(self._url, exc) from exc
        try:
            with anyio.fail_after(self._open_timeout):
                await stream.send(self._core.data_to_send())
                accepted = await _read_answer(stream, self._core, self._url)
            session = ClientSession(
                stream,
                self._core,
                accepted,
                timeout=self._timeout,
                close_timeout=self._close_timeout,
                url=self._url,
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            raise
        return session

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[ClientSession]:
        session = await self._open()
        try:
            # The body's exception is re-raised outside the task group, with its own type
            # rather than inside an ExceptionGroup (the background tasks never raise).
            error: BaseException | None = None
            async with anyio.create_task_group() as task_group:
                session._reads_on_demand = False  # from now on: before the reader starts
                task_group.start_soon(session._read)
                if self._ping_interval is not None:
                    task_group.start_soon(
                        session._keep_alive, self._ping_interval, self._ping_timeout
                    )
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
                await session._stream.aclose()


def _unreachable(url: str, exc: BaseException) -> OSError:
    """``exc`` (anyio's "All connection attempts failed", a TLS failure) as one line that
    names the URL; the type stays (``ConnectionRefusedError``...) unless it is TLS's."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, ssl_module.SSLError) or not isinstance(cause, OSError):
        reason = getattr(cause, "strerror", None) or str(cause)
        return OSError(f"cannot connect to {url}: {reason}")
    if cause.errno is not None and cause.errno > 0:
        reason = os.strerror(cause.errno)
    else:
        reason = cause.strerror or str(cause)
    return type(cause)(f"cannot connect to {url}: {reason[:1].lower()}{reason[1:]}")


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
