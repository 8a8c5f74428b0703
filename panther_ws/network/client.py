"""The network client: ``async with connect("ws://host/path") as ws:`` on the sans-IO core.

The session has the same surface as the in-memory test client
(:class:`panther_ws.network.session.WebsocketSession`), so one test body runs against both.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

from panther_ws.hosting.primitives import Primitives, current_backend, progress_deadline
from panther_ws.network.pump import FrameReader, Keepalive, OrderedWriter
from panther_ws.network.session import (
    ReceiveTimeout,
    TypedReceiveMixin,
    WebsocketClosed,
    WebsocketRejected,
)
from panther_ws.network.stream import READ_SIZE, AsyncioSocketStream, connect_tcp
from panther_ws.network.tasks import owned_tasks
from panther_ws.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Accepted,
    ClientConnection,
    Closed,
    Event,
    HeadersInput,
    Message,
    Pong,
    Rejected,
    normalize_headers,
)
from panther_ws.protocol.connection import OPEN
from panther_ws.protocol.payloads import as_payload

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
        # asyncio's loop, for its timers (cheaper than a cancel scope); None on trio.
        self._loop = asyncio.get_running_loop() if current_backend() == "asyncio" else None
        # The hand-off to the user, on every message: the backend's own events.
        self._new_event = Primitives().event
        self._inbox_ready = self._new_event()
        self._closed_event: Closed | None = None
        # Set when the server's close has come, or close() stopped waiting for it.
        self._closed = self._new_event()
        self._writer = OrderedWriter(core, stream)
        self._keepalive = Keepalive(core, self._writer)
        self._pings: deque[tuple[bytes, anyio.Event]] = deque()  # awaiting their pong
        self._receiver_waiting = False
        self._closing = False
        self._moved = self._new_event()
        self._reads_on_demand = True  # until a background reader takes over
        self._stream_closed = False
        self._deadline: _ReceiveDeadline | None = None  # the background reader's receives
        # Frames that came with the 101 wait in the core, parsed by the first read: so a
        # message before a protocol error is answered first, as every later one is.
        self._reader: FrameReader | None = FrameReader(
            core,
            self._writer,
            self._keepalive,
            # Large reads: a 64 KiB message and its header come in one, which the core
            # parses whole on its fast path (our stream reads into the loop's one buffer;
            # trio's allocates each read but keeps reusing the same heap memory).
            functools.partial(stream.receive, READ_SIZE),
            deliver=self._on_event,
            consumer_waits=self._user_waits,
            wait_for_consumer=self._wait_until_the_user_is_ready,
            parse_first=True,
        )

    @property
    def close_code(self) -> int | None:
        return self._closed_event.code if self._closed_event else None

    @property
    def close_reason(self) -> str | None:
        return self._closed_event.reason if self._closed_event else None

    # -- reading -------------------------------------------------------------------------

    def _start_reading(self, task_group: anyio.abc.TaskGroup) -> None:
        """From now on a background task reads (``async with connect(...)``)."""
        self._reads_on_demand = False
        self._deadline = _ReceiveDeadline(self._time_out, task_group, self._loop)
        assert self._reader is not None  # let go only once the session is over
        self._reader.take_bytes_from(self._stream)
        task_group.start_soon(self._read)

    @property
    def _deadline_task_started(self) -> bool:
        return self._deadline is not None and self._deadline.task_started

    def _let_go(self) -> None:
        """The session is over: stop the receive timer and drop what holds this session's
        bound methods (the reader, the stream's consumer, the timer).

        So the session and its core are freed as soon as the user lets go of it, not by
        the cycle collector: its passes were ~25 us of each connect cycle.
        """
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None  # the inbox ends with the close: nothing reads any more
        self._reader = None
        if isinstance(self._stream, AsyncioSocketStream):
            self._stream.consumer = None

    async def _read(self) -> None:
        """The background reader of ``async with connect(...)``.

        Out of reach of the body's cancel scopes: a cancelled body still closes, and the
        server's answer to that close must be read. Closing the stream ends it; however it
        ends (a bug too), whoever waits for a message is woken.
        """
        assert self._reader is not None  # let go only once this task has ended
        try:
            if self._loop is not None:  # a plain task (network/tasks.py): out of their reach
                await self._reader.run()
            else:  # a trio nursery's task is not
                with anyio.CancelScope(shield=True):
                    await self._reader.run()
        finally:
            self._stream_ended()

    async def _read_once(self) -> None:
        """Read on demand: what arrived, or what waits in the core, and handle its events."""
        if self._reader is None or not await self._reader.step():
            self._stream_ended()

    def _stream_ended(self) -> None:
        if self._closed_event is None:
            self._on_event(Closed(self._core.close_code or 1006, self._core.close_reason or ""))

    def _user_waits(self) -> bool:
        return self._receiver_waiting and not self._inbox and not self._closing

    async def _wait_until_the_user_is_ready(self) -> None:
        """Parse the next frame only once the user has taken this message and waits again.

        So messages the peer sent before a protocol error are answered before we fail the
        connection, and a slow consumer slows the peer rather than growing a queue.
        ``close()`` releases the wait. (Reading on demand, the user is the one waiting.)
        """
        while not self._reads_on_demand and not self._closing and not self._user_waits():
            self._moved = self._new_event()
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
            self._answer_pings(event.payload)
        else:
            return  # a ping: the core has queued its pong
        self._inbox_ready.set()

    def _time_out(self) -> None:
        """The waiting receive's deadline has passed: wake it (it finds the inbox empty)."""
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

    async def _keep_alive(self, interval: float, timeout: float) -> None:
        if await self._keepalive.run(interval, timeout):
            await self._stream.aclose()

    # -- the session surface -------------------------------------------------------------

    async def send(self, data: Any) -> None:
        """Send ``str`` as text, bytes-like as binary, anything else as compact JSON text."""
        self._require_open()
        self._core.send(as_payload(data))
        await self._writer.flush_quietly()  # a peer that is gone: the reader reports it

    def _require_open(self) -> None:
        if self._core.state is not OPEN:
            raise WebsocketClosed(self.close_code or 1006, self.close_reason or "")

    async def _next(self, timeout: float | None, waiting_for: str) -> Message | Closed:
        inbox = self._inbox
        if not inbox:
            limit = self._timeout if timeout is None else timeout
            if self._deadline is None:  # reading on demand
                with anyio.move_on_after(math.inf if limit is None else limit):
                    while not inbox:
                        await self._read_once()
            else:
                await self._wait_for_a_message(self._deadline, limit)
            if not inbox:
                raise ReceiveTimeout(f"waited {limit} s for {waiting_for} from {self.url}")
        event = inbox[0]
        if isinstance(event, Message):
            inbox.popleft()
        return event

    async def _wait_for_a_message(self, deadline: _ReceiveDeadline, limit: float | None) -> None:
        if self._receiver_waiting:
            # One hand-off and one deadline per session: a second waiter would take both.
            raise RuntimeError(
                "another task is already waiting in receive() or wait_closed() on this "
                "connection; receive from one task at a time"
            )
        deadline.start(limit)
        try:
            while not self._inbox and not deadline.passed:
                self._receiver_waiting = True
                self._moved.set()
                self._inbox_ready = self._new_event()
                try:
                    await self._inbox_ready.wait()
                finally:
                    self._receiver_waiting = False
        finally:
            deadline.stop()

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
        if self._core.state is OPEN:
            self._core.close(code, reason)
            await self._writer.flush_quietly()
        if self._closed_event is None:
            await self._wait_for_the_close()
        if self._reads_on_demand:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            self._let_go()

    async def _wait_for_the_close(self) -> None:
        """Wait up to ``close_timeout`` for the server's close.

        With a background reader ``_closed`` is set afterwards whatever came, so once a
        close() has given up, leaving ``async with`` does not wait a second time. On asyncio
        the timeout is a loop timer that sets it: a third of what a cancel scope costs.
        """
        if self._reads_on_demand:
            async with progress_deadline(self._close_timeout):
                while self._closed_event is None:
                    await self._read_once()
        elif self._loop is None:
            with anyio.move_on_after(self._close_timeout):
                await self._closed.wait()
            self._closed.set()
        else:
            timer = self._loop.call_later(self._close_timeout, self._closed.set)
            try:
                await self._closed.wait()
            finally:
                timer.cancel()

    async def _finish(self) -> None:
        """Leaving ``async with``: close, then close the socket (which ends the reader)."""
        await self.close()
        await self._stream.aclose()
        self._stream_closed = True

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
        await self._writer.flush_quietly()
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


class _ReceiveDeadline:
    """The timeout of the background reader's receives: one timer per session, not per call.

    A cancel scope per ``receive()`` is most of what a small message costs the client
    (anyio's ``move_on_after`` is ~20 us on asyncio). Here a receive only notes its deadline;
    one timer, armed at the earliest deadline that may be pending and re-armed when it
    fires, wakes the receive whose deadline has really passed. A stream of messages that
    each come well within the timeout costs one wake-up per ``timeout`` seconds. On asyncio
    the timer is the loop's own (``call_at``); elsewhere a task of the session's.
    """

    def __init__(
        self,
        expire: Callable[[], None],
        task_group: anyio.abc.TaskGroup,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._expire = expire
        self._task_group = task_group
        self._until = math.inf  # the waiting receive's deadline; inf: none waits
        self._armed = math.inf  # when the timer fires
        self.passed = False
        self._scope: anyio.CancelScope | None = None  # the timer task's sleep, off asyncio
        self.task_started = False
        self._handle: asyncio.TimerHandle | None = None
        self._loop = loop
        self._clock = self._loop.time if self._loop is not None else anyio.current_time

    def start(self, limit: float | None) -> None:
        """A receive starts waiting, for up to ``limit`` seconds (None: for ever)."""
        self.passed = False
        if limit is None:
            return
        self._until = until = self._clock() + limit
        if until < self._armed:
            self._arm(until)

    def stop(self) -> None:
        self._until = math.inf  # the timer, when it fires, finds nothing to do

    def cancel(self) -> None:
        """The session is over: no timer may keep it alive (the task ends with its group)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        self._armed = when
        if self._loop is not None:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(when, self._fire)
        elif not self.task_started:
            self.task_started = True
            self._task_group.start_soon(self._run_timer)
        elif self._scope is not None:
            self._scope.deadline = when

    def _fire(self) -> None:
        """The timer went off: expire the waiting receive if its time is up, else re-arm."""
        self._handle, self._armed = None, math.inf
        if self._until == math.inf:
            return
        if self._clock() >= self._until:
            self._until = math.inf
            self.passed = True
            self._expire()
        else:
            self._arm(self._until)

    async def _run_timer(self) -> None:
        while True:
            with anyio.CancelScope(deadline=self._armed) as self._scope:
                await anyio.sleep_forever()
            self._fire()


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
    hostname, port = parts.hostname, parts.port  # each parses the URL's netloc again
    if parts.scheme not in ("ws", "wss") or not hostname:
        raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
    host = f"[{hostname}]" if ":" in hostname else hostname  # an IPv6 literal keeps its []
    core = ClientConnection(
        host if port is None else f"{host}:{port}",
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
        (hostname, port or (443 if secure else 80)),
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
        stream: anyio.abc.ByteStream | None = None
        try:
            async with progress_deadline(self._open_timeout):  # one deadline for both steps
                try:
                    stream = await connect_tcp(host, port, ssl_context=self._ssl)
                except (OSError, anyio.BrokenResourceError) as exc:
                    raise _unreachable(self._url, exc) from exc
                await stream.send(self._core.data_to_send())
                accepted = await _read_answer(stream, self._core, self._url)
                return ClientSession(
                    stream,
                    self._core,
                    accepted,
                    timeout=self._timeout,
                    close_timeout=self._close_timeout,
                    url=self._url,
                )
        except BaseException:
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
            raise
        if stream is None:
            raise TimeoutError(
                f"cannot connect to {self._url}: no connection within {self._open_timeout} s"
            )
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise TimeoutError(
            f"cannot connect to {self._url}: no upgrade answer within {self._open_timeout} s"
        )

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[ClientSession]:
        session = await self._open()
        # The body's exception is re-raised outside the task group, with its own type rather
        # than inside an ExceptionGroup (the background tasks never raise).
        error: BaseException | None = None
        try:
            async with owned_tasks(sticky=False) as task_group:
                try:
                    session._start_reading(task_group)
                    if self._ping_interval is not None:
                        task_group.start_soon(
                            session._keep_alive, self._ping_interval, self._ping_timeout
                        )
                    try:
                        yield session
                    except BaseException as exc:
                        error = exc
                    if error is None:
                        await session._finish()
                    else:  # the body may have been cancelled: closing must not be
                        with anyio.CancelScope(shield=True):
                            await session._finish()
                finally:
                    if not session._stream_closed:  # closing failed: the reader ends all the same
                        with anyio.CancelScope(shield=True):
                            await session._stream.aclose()
                # The closed stream ends the reader; only the other tasks need cancelling.
                if self._ping_interval is not None or session._deadline_task_started:
                    task_group.cancel_scope.cancel()
        finally:
            session._let_go()
        if error is not None:
            raise error


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
            data: bytes | None = await stream.receive(READ_SIZE)
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
