"""One socket of the reference server: its handshake, then the app's websocket on the core.

The app is hosted by :class:`~panther_ws.hosting.host.ConnectionHost`, as in the test
client, and the frames are read by :class:`~panther_ws.network.pump.FrameReader`, as in the
network client (its backpressure, its parsing in asyncio's transport callback); this module
adds what only a server has: the handshake, the wait for the app's answer, plain HTTP, the
connection limits, and the policy on what the app raises.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import sys
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from panther_ws.hosting.host import AppInbox, ConnectionHost, Ending
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp
from panther_ws.network.plain_http import HTTPExchange, plain_request
from panther_ws.network.pump import FrameReader, Keepalive, OrderedWriter, Spawn
from panther_ws.network.stream import AsyncioSocketStream, receiver
from panther_ws.protocol import ProtocolError, ServerConnection
from panther_ws.protocol.asgi import ASGIConnectionBridge, ClientDisconnected
from panther_ws.protocol.connection import CLOSING, OPEN
from panther_ws.protocol.events import Closed, Event, Request
from panther_ws.protocol.responses import error_response

if sys.version_info < (3, 11):
    # anyio's dependency there; mypy runs on 3.11+, where it is not installed
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

logger = logging.getLogger("panther_ws.server")

_SERVICE_UNAVAILABLE = error_response(503, b"Service Unavailable")


class ConnectionConfig(Protocol):
    """The server's settings one socket reads (``ServerConfig`` has them all).

    A protocol rather than the server's class, so that this module needs nothing of the
    server: the server imports the connection, never the other way round.
    """

    @property
    def ssl(self) -> ssl.SSLContext | None: ...
    @property
    def handshake_timeout(self) -> float: ...
    @property
    def close_timeout(self) -> float: ...
    @property
    def read_size(self) -> int: ...
    @property
    def max_request_size(self) -> int: ...
    @property
    def max_body_size(self) -> int: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_handshakes(self) -> int: ...
    @property
    def permessage_deflate(self) -> bool: ...
    @property
    def ping_interval(self) -> float | None: ...
    @property
    def ping_timeout(self) -> float: ...


class SocketConnection:
    """One socket: handshake, then the app's ASGI session on the core.

    ``admit`` is the server's say once the request is complete: False (no connection slot
    free) answers 503; ``finished`` hears once that the socket is closed. ``lifespan_state``
    is copied into every scope. ``spawn`` starts the
    connection's other tasks (the reader's, the keepalive) in the server's task group, not
    in one of the connection's own: a task group is ~1 KiB per idle connection, and on
    asyncio the reader has no task at all while idle (see :meth:`FrameReader.start`). What
    they raise ends the server, as it did through a task group of the connection's.
    """

    # Slots: a dict of its attributes is ~0.3 KiB per idle connection.
    __slots__ = (
        "__weakref__",
        "_admit",
        "_answer_scope",
        "_bridge",
        "_closed",
        "_closed_event",
        "_finished",
        "_handshake_scope",
        "_host",
        "_inbox",
        "_keepalive",
        "_keepalive_scope",
        "_read_before_answer",
        "_reader",
        "_receive",
        "_scope",
        "_spawn",
        "_writer",
        "app",
        "client_address",
        "config",
        "core",
        "lifespan_state",
        "server_address",
        "stream",
    )

    def __init__(
        self,
        stream: anyio.abc.SocketStream,
        *,
        app: ASGIApp,
        config: ConnectionConfig,
        max_message_size: int,
        primitives: Primitives,
        lifespan_state: dict[str, Any],
        admit: Callable[[SocketConnection], bool],
        spawn: Spawn,
        finished: Callable[[SocketConnection], None],
    ) -> None:
        self.app = app
        self._spawn = spawn
        self.config = config
        self.lifespan_state = lifespan_state
        self._admit = admit
        self._finished = finished
        self.core = ServerConnection(
            max_message_size=max_message_size,
            permessage_deflate=self.config.permessage_deflate,
            max_request_size=self.config.max_request_size,
        )
        self._use(stream)
        # The hand-off to the app, on every message: the backend's own events (see
        # panther_ws.hosting.primitives), created when a wait starts.
        self._inbox = AppInbox(primitives)
        # The core is closed (or the peer gone); an event only if the close is waited for:
        # most connections never wait, and an event is ~1 KiB per idle connection.
        self._closed = False
        self._closed_event: anyio.Event | None = None
        self._bridge: ASGIConnectionBridge | None = None
        self._host: ConnectionHost | None = None
        self._reader: FrameReader | None = None
        # Cancelled by shutdown once the request is in, unless a 1001 can end it instead.
        self._scope: anyio.CancelScope | None = None
        self._keepalive_scope: anyio.CancelScope | None = None
        # Cancelled to drop a silent socket; let go once the request is in (~0.6 KiB).
        self._handshake_scope: anyio.CancelScope | None = anyio.CancelScope()
        self._read_before_answer = 0  # bytes read after the request, before accept or reject
        self._answer_scope: anyio.CancelScope | None = None  # the reader's wait for the answer
        sockname = stream.extra(anyio.abc.SocketAttribute.local_address)
        peer = stream.extra(anyio.abc.SocketAttribute.remote_address)
        self.server_address = (
            (str(sockname[0]), int(sockname[1])) if isinstance(sockname, tuple) else None
        )
        self.client_address = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None

    def _use(self, stream: anyio.abc.ByteStream) -> None:
        """Read and write ``stream`` from now on: the socket, then its TLS layer if any."""
        self.stream = stream
        self._receive = receiver(stream, self.config.read_size)
        self._writer = OrderedWriter(self.core, stream)
        self._keepalive = Keepalive(self.core, self._writer)

    def drop_handshake(self) -> None:
        """Too many handshakes, or shutdown: close this socket if it is still silent."""
        if self._handshake_scope is not None:
            self._handshake_scope.cancel()

    def going_away(self) -> None:
        """Server shutdown: close with 1001 (from a sync context: the reader does the I/O)."""
        if self.core.state is OPEN:
            self.core.close(1001, "server shutting down")
            if self._scope is not None:
                self._spawn(self._writer.flush_quietly)
        elif self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        try:
            request = await self._read_request()
            self._handshake_scope = None
            if request is None:
                return
            if not self._admit(self):
                logger.warning(
                    "%s - 503: max_connections (%d) reached",
                    _peer(self.client_address),
                    self.config.max_connections,
                )
                await self.stream.send(_SERVICE_UNAVAILABLE)
                return
            if isinstance(request, HTTPExchange):
                await self._serve_http(request)
                return
            self._bridge = ASGIConnectionBridge(
                self.core,
                request,
                client=self.client_address,
                server=self.server_address,
                scheme="wss" if self.config.ssl is not None else "ws",
            )
            del request  # the scope has what the app needs of it; this frame lives on
            self._bridge.scope["state"] = dict(self.lifespan_state)
            self._host = ConnectionHost(
                self._bridge,
                self._inbox,
                self._bridge.scope,
                flush=self._flush,
                report=self._reported,
                on_answer=self._answered,
            )
            inbox = self._inbox
            self._reader = FrameReader(
                self.core,
                self._writer,
                self._keepalive,
                self._read_before_the_answer,
                deliver=self._on_event,
                consumer_waits=inbox.waits_for_more,
                wait_for_consumer=inbox.wait_until_ready,
            )
            with anyio.CancelScope() as self._scope:
                self._reader.start(self.stream, self._spawn, self._reading_ended)
                # Awaited here, not in a method of its own: each coroutine an idle
                # connection waits in is a frame kept for as long as it waits (~0.25 KiB).
                await self._host.run(self.app)
                if self._host.ending is Ending.RETURNED_BEFORE_ANSWER:
                    logger.error(
                        "%s - the app returned without accepting or rejecting",
                        _peer(self.client_address),
                    )
                await self._finish_closing()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass  # the client vanished; nothing left to tell it
        finally:
            # The reader's task, if one reads now, ends with the stream closed below.
            for scope in (self._answer_scope, self._keepalive_scope):
                if scope is not None:
                    scope.cancel()
            if isinstance(self.stream, AsyncioSocketStream):
                self.stream.consumer = self.stream.wake_reader = None
            # The reader holds our bound methods: without it, a finished connection is
            # freed at once, not by the cycle collector.
            self._reader = None
            try:
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
            finally:
                self._finished(self)

    # -- handshake ---------------------------------------------------------------------------

    async def _read_request(self) -> Request | HTTPExchange | None:
        """The upgrade request, or a plain HTTP one; None if the socket is done with."""
        config = self.config
        handshake_scope = self._handshake_scope
        assert handshake_scope is not None
        with handshake_scope, anyio.move_on_after(config.handshake_timeout):
            if config.ssl is not None and not await self._start_tls(config.ssl):
                return None
            received: list[bytes] = []  # bounded: the core refuses a head over the limit
            while True:
                try:
                    data = await self.stream.receive(config.read_size)
                except anyio.EndOfStream:
                    return None
                received.append(data)
                try:
                    self.core.receive_data(data)
                except ProtocolError as exc:
                    plain = plain_request(b"".join(received), config.max_request_size)
                    if plain is not None:
                        return HTTPExchange(
                            *plain,
                            self.stream,
                            max_body_size=config.max_body_size,
                            read_timeout=config.handshake_timeout,
                            read_size=config.read_size,
                        )
                    logger.info("%s - bad upgrade request: %s", _peer(self.client_address), exc)
                    await self.stream.send(self.core.data_to_send())
                    return None
                for event in self.core.events():
                    if isinstance(event, Request):
                        return event
        if handshake_scope.cancel_called:
            logger.info(
                "%s - dropped before its upgrade request: max_handshakes (%d) reached",
                _peer(self.client_address),
                self.config.max_handshakes,
            )
        else:
            logger.info(
                "%s - no upgrade request within %ss",
                _peer(self.client_address),
                self.config.handshake_timeout,
            )
        return None

    async def _start_tls(self, context: ssl.SSLContext) -> bool:
        try:
            stream = await TLSStream.wrap(
                self.stream, server_side=True, ssl_context=context, standard_compatible=False
            )
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            logger.info("%s - TLS handshake failed: %s", _peer(self.client_address), exc)
            return False
        self._use(stream)
        return True

    # -- the app -------------------------------------------------------------------------------

    def _reported(self, exc: BaseException) -> BaseException | None:
        """What the app raised, logged with its traceback; None for our own cancellation.

        Whatever the app raises (CancelledError, KeyboardInterrupt, SystemExit included)
        ends this connection only; a cancellation of our own scope (the server's shutdown,
        a signal) goes on up.
        """
        if _cancels_this_task(exc):
            return None
        if not isinstance(exc, ClientDisconnected):
            logger.exception("%s - exception in the ASGI app", _peer(self.client_address))
        return exc

    async def _call(self, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        """Run the app on a plain HTTP scope; True if it raised (the traceback is logged)."""
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            error = self._reported(exc)
            if error is None:
                raise
            return not isinstance(error, ClientDisconnected)
        return False

    async def _serve_http(self, exchange: HTTPExchange) -> None:
        if exchange.declared_body_too_large():
            await exchange.refuse(413, b"Payload Too Large")
        else:
            scope = exchange.scope(
                scheme="https" if self.config.ssl is not None else "http",
                client=self.client_address,
                server=self.server_address,
                state=self.lifespan_state,
            )
            raised = await self._call(scope, exchange.receive, exchange.send)
            if not exchange.complete.is_set():
                if not raised:
                    logger.error(
                        "%s - the app returned without completing its HTTP response",
                        _peer(self.client_address),
                    )
                if not exchange.started:
                    await exchange.refuse(500, b"Internal Server Error")
        await exchange.finish()
        request = exchange.request
        logger.info(
            '%s - "%s %s HTTP/%s" %s',
            _peer(self.client_address),
            request.method.decode("ascii"),
            request.target.decode("latin-1"),
            request.http_version.decode("ascii"),
            exchange.status_code,
        )

    def _answered(self, accepted: bool) -> None:
        """The app accepted or rejected: the reader may read on, the keepalive start."""
        assert self._bridge is not None
        if self._reader is not None:
            self._reader.receive_with(self._receive)
        if self._answer_scope is not None:
            self._answer_scope.cancel()
        if accepted and self.config.ping_interval is not None:
            # From the accept on: a keepalive started with the reader would find the
            # connection not yet open and end at once.
            self._keepalive_scope = anyio.CancelScope()
            self._spawn(self._keep_alive)
        logger.info(
            '%s - "WebSocket %s" [%s]',
            _peer(self.client_address),
            self._bridge.scope["path"],
            "accepted" if accepted else "rejected",
        )

    # -- bytes -----------------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        """An HTTP error response (no frame has been sent): best effort."""
        with contextlib.suppress(anyio.BrokenResourceError):
            await self._writer.write_raw(data)

    async def _flush(self) -> None:
        """Write what the core queued; a vanished client is ``ClientDisconnected`` (ASGI)."""
        try:
            await self._writer.flush()
        except anyio.BrokenResourceError as exc:
            raise ClientDisconnected("the client has disconnected") from exc

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Closed):  # the reader has written our close frame already
            self._set_closed()
            self._inbox.disconnect(event.code, event.reason)
            return
        message = ASGIConnectionBridge.receive_message_for(event)  # None: a ping or a pong
        if message is not None:
            self._inbox.deliver(message)

    def _reading_ended(self) -> None:
        self._set_closed()
        self._inbox.disconnect(self.core.close_code or 1006)

    async def _read_before_the_answer(self) -> bytes:
        """While the app decides (accept or reject), read at most ``max_request_size`` bytes.

        The client may already send frames; they wait in the core until ``accept()``. Past
        the bound the server stops reading, so the kernel's buffers fill and the client's
        ``send()`` blocks instead of our memory growing for as long as the app takes.
        Returns ``b""`` once the app has answered: the frames that came first are handled
        before anything else is read, then the reader reads with ``self._receive``.
        """
        budget = self.config.max_request_size - self._read_before_answer
        try:
            with anyio.CancelScope() as self._answer_scope:
                if budget <= 0:
                    await anyio.sleep_forever()
                # Not anyio's receive(): on trio, cancelled there (by the answer), it leaves
                # a reference cycle through this frame, and the connection to the collector.
                data = await receiver(self.stream, min(budget, self.config.read_size))()
                self._read_before_answer += len(data)
                return data
            return b""
        finally:
            self._answer_scope = None  # not kept by the open connection (~0.6-0.8 KiB)

    async def _finish_closing(self) -> None:
        """After the app: wait (bounded) for the peer to answer our close frame."""
        if self.core.state is CLOSING and not self._closed:
            closed = self._closed_event = anyio.Event()
            with anyio.move_on_after(self.config.close_timeout):
                await closed.wait()

    def _set_closed(self) -> None:
        self._closed = True
        if self._closed_event is not None:
            self._closed_event.set()

    async def _keep_alive(self) -> None:
        assert self._keepalive_scope is not None
        assert self.config.ping_interval is not None
        with self._keepalive_scope:
            if await self._keepalive.run(self.config.ping_interval, self.config.ping_timeout):
                logger.info("%s - keepalive ping timed out", _peer(self.client_address))
                self._inbox.disconnect(1011, "keepalive ping timeout")
                self._set_closed()


def _peer(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"


def _cancels_this_task(exc: BaseException) -> bool:
    """Whether ``exc`` is the cancellation of a scope around this task, not the app's own.

    An app can raise ``asyncio.CancelledError`` itself or await a task that someone else
    cancelled; only when a scope we run in has been cancelled (or its deadline passed) is
    the cancellation really ours, and then it must propagate.
    """
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, BaseExceptionGroup):
        is_cancellation = exc.split(cancelled)[0] is not None
    else:
        is_cancellation = isinstance(exc, cancelled)
    return is_cancellation and anyio.current_effective_deadline() <= anyio.current_time()
