"""The reference server: the sans-IO core and its ASGI bridge, pumped by anyio.

Everything protocol-shaped happens in ``panther_ws.protocol``; this module only moves bytes
between sockets and the core, runs the app's tasks, and applies limits and timeouts. It runs
on asyncio and on trio.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import ssl
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from panther_ws.hosting.lifespan import LifespanError, LifespanRunner
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp
from panther_ws.network.plain_http import HTTPExchange, plain_request
from panther_ws.network.pump import Keepalive, OrderedWriter
from panther_ws.network.stream import AsyncioSocketStream, open_listener
from panther_ws.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ConnectionState,
    ProtocolError,
    ServerConnection,
)
from panther_ws.protocol.asgi import ASGIConnectionBridge, ClientDisconnected
from panther_ws.protocol.events import Closed, Event, Message, Ping, Pong, Request
from panther_ws.protocol.responses import error_response

if sys.version_info < (3, 11):
    # anyio's dependency there; mypy runs on 3.11+, where it is not installed
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

logger = logging.getLogger("panther_ws.server")


_INTERNAL_ERROR = error_response(500, b"Internal Server Error")
_SERVICE_UNAVAILABLE = error_response(503, b"Service Unavailable")


@dataclass
class ServerConfig:
    """Limits and timeouts; the defaults are safe for a public endpoint.

    ``handshake_timeout`` bounds how long a client may take to send its request, TLS
    handshake included (slowloris), and each read of a plain HTTP request's body;
    ``max_request_size`` its head and what the server reads after it until the app answers,
    ``max_message_size`` any message (1009; None: the app's own ``max_message_size``
    attribute if it has one, else 1 MiB), ``max_body_size`` a plain HTTP request's body
    (413), ``close_timeout`` the wait for the peer's close frame,
    ``ping_interval``/``ping_timeout`` the keepalive (None: off). ``ssl`` serves wss:// and
    https://. ``lifespan``: "auto" runs the app's lifespan and, as uvicorn does, treats one
    that raises as unsupported; "on" requires it; "off" skips it.

    Two separate counts, so that sockets that never send a request cannot take the slots of
    real connections: ``max_handshakes`` sockets may be sending their request at once (a new
    one beyond it drops the oldest), and ``max_connections`` requests may be past it, with the
    app (503 beyond).

    Backpressure both ways: the app's ``send`` returns once the socket took the bytes, so a
    slow reader slows the app; and the next message is parsed only when the app is back in
    ``receive()``, so a slow app slows the peer instead of growing a queue. That also means
    a message that precedes a protocol error is answered before the connection fails.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_message_size: int | None = None
    max_request_size: int = 16 * 1024
    max_body_size: int = 1024 * 1024
    handshake_timeout: float = 10.0
    close_timeout: float = 5.0
    ping_interval: float | None = None
    ping_timeout: float = 20.0
    max_connections: int = 1000
    max_handshakes: int = 256
    shutdown_timeout: float = 10.0
    permessage_deflate: bool = True
    lifespan: Literal["auto", "on", "off"] = "auto"
    ssl: ssl.SSLContext | None = None
    read_size: int = 65536

    def __post_init__(self) -> None:
        sizes = ("max_request_size", "max_body_size", "max_connections", "max_handshakes")
        for name in (*sizes, "read_size", "max_message_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"ServerConfig.{name} must be positive, got {value!r}")
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(
                f"ServerConfig.lifespan must be 'auto', 'on' or 'off', got {self.lifespan!r}"
            )


class Server:
    """Serves one ASGI app; ``await server.serve()`` until :meth:`shutdown` is called."""

    def __init__(self, app: ASGIApp, config: ServerConfig | None = None) -> None:
        self.app = app
        self.config = config or ServerConfig()
        self.max_message_size = _max_message_size(app, self.config.max_message_size)
        self.port: int | None = None
        self._handshakes: dict[_Connection, None] = {}  # still reading a request, oldest first
        self._connections: set[_Connection] = set()  # past the request: the app has them
        self.primitives: Primitives  # the running backend's, set by serve()
        self._stop = anyio.Event()
        self._drained = anyio.Event()
        self._accept_stopped = anyio.Event()

    def shutdown(self) -> None:
        """Stop accepting, close every connection with 1001, then run lifespan shutdown."""
        self._stop.set()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self.primitives = Primitives()
        startup_failed: LifespanError | None = None
        async with anyio.create_task_group() as task_group:  # the lifespan's task
            try:
                lifespan = await self._start_lifespan(task_group)
            except LifespanError as exc:
                # Raised outside the task group, so the caller sees it, not an ExceptionGroup.
                startup_failed = exc
            else:
                await self._serve(lifespan, task_status)
            task_group.cancel_scope.cancel()
        if startup_failed is not None:
            raise startup_failed
        logger.info("Finished server process")

    async def _start_lifespan(self, task_group: anyio.abc.TaskGroup) -> LifespanRunner | None:
        """The app's lifespan startup, as ``config.lifespan`` says; None if it has none.

        "auto" treats an app whose lifespan scope raises as one without lifespan support (as
        uvicorn does: Starlette-less ASGI apps often assert their scope type), in one log
        line; "on" makes that, and an app that returns without answering, a startup failure.
        """
        mode = self.config.lifespan
        if mode == "off":
            return None
        lifespan = LifespanRunner(self.app)
        try:
            await lifespan.startup(task_group)
        except LifespanError:
            raise
        except Exception as exc:
            if mode == "on":
                logger.error("exception in the app's lifespan startup", exc_info=exc)
                raise LifespanError(f"lifespan startup raised {exc!r}") from exc
            logger.info("ASGI 'lifespan' protocol appears unsupported (the app raised %r)", exc)
            return None
        if not lifespan.supported:
            if mode == "on":
                raise LifespanError(
                    "lifespan 'on': the app returned from its lifespan scope without "
                    "answering lifespan.startup"
                )
            return None
        return lifespan

    async def _serve(
        self, lifespan: LifespanRunner | None, task_status: anyio.abc.TaskStatus[int]
    ) -> None:
        config = self.config
        listener = await open_listener(config.host, config.port)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        logger.info(
            "panther-ws running on %s://%s:%d (Press CTRL+C to quit)",
            "wss" if config.ssl is not None else "ws",
            config.host,
            self.port,
        )
        state = lifespan.state if lifespan is not None else {}
        accepting = anyio.CancelScope()
        async with anyio.create_task_group() as connections:
            connections.start_soon(self._accept_loop, listener, connections, state, accepting)
            task_status.started(self.port)
            await self._stop.wait()
            accepting.cancel()
            await self._accept_stopped.wait()  # closing a listener mid-accept would raise
            await listener.aclose()
            logger.info("Shutting down: closing %d connection(s)", len(self._connections))
            for connection in list(self._handshakes):
                connection.drop_handshake()
            for connection in list(self._connections):
                connection.going_away()
            if self._connections or self._handshakes:
                with anyio.move_on_after(config.shutdown_timeout):
                    await self._drained.wait()
            connections.cancel_scope.cancel()
        if lifespan is not None:
            await lifespan.shutdown()

    async def _accept_loop(
        self,
        listener: anyio.abc.Listener[Any],
        connections: anyio.abc.TaskGroup,
        state: dict[str, Any],
        accepting: anyio.CancelScope,
    ) -> None:
        async def handle(stream: anyio.abc.SocketStream) -> None:
            connection = _Connection(self, stream, state)
            self._begin_handshake(connection)
            try:
                await connection.run()
            finally:
                self._handshakes.pop(connection, None)
                self._connections.discard(connection)
                if self._stop.is_set() and not self._connections and not self._handshakes:
                    self._drained.set()

        with accepting:
            await listener.serve(handle, task_group=connections)
        self._accept_stopped.set()

    def _begin_handshake(self, connection: _Connection) -> None:
        """Count a new socket as a handshake; at the limit, drop the oldest one still silent.

        Dropping the oldest rather than refusing the newest: a real client sends its request
        at once, so it is never the oldest for long, and idle sockets only push each other
        out; refusing new sockets instead would let ``max_handshakes`` idle ones lock every
        client out, which is the attack the limit is there to stop.
        """
        if len(self._handshakes) >= self.config.max_handshakes:
            oldest = next(iter(self._handshakes))
            del self._handshakes[oldest]
            oldest.drop_handshake()
        self._handshakes[connection] = None

    def admit(self, connection: _Connection) -> bool:
        """The request is complete: it takes a connection slot, if one is free."""
        self._handshakes.pop(connection, None)
        if len(self._connections) >= self.config.max_connections:
            return False
        self._connections.add(connection)
        return True


class _Connection:
    """One socket: handshake, then the app's ASGI session on the core."""

    def __init__(
        self, server: Server, stream: anyio.abc.SocketStream, state: dict[str, Any]
    ) -> None:
        self.server = server
        self.config = server.config
        self.lifespan_state = state
        self.core = ServerConnection(
            max_message_size=server.max_message_size,
            permessage_deflate=self.config.permessage_deflate,
            max_request_size=self.config.max_request_size,
        )
        self._use(stream)
        self._to_app: deque[dict[str, Any]] = deque()
        # The hand-off to the app, on every message: the backend's own events (see
        # panther_ws.hosting.primitives), created when a wait starts.
        self._new_event = server.primitives.event
        self._to_app_ready = self._new_event()
        self._app_waiting = False
        self._app_done = False
        self._app_moved = self._new_event()
        self._closed = anyio.Event()
        self._bridge: ASGIConnectionBridge | None = None
        self._reader_idle = False  # the reader waits for bytes: a consumer may take them
        self._handed_over: Event | None = None  # what the consumer took in, for the reader
        self._app_behind = False  # the consumer delivered a message and more bytes wait
        self._task_group: anyio.abc.TaskGroup | None = None
        self._handshake_scope = anyio.CancelScope()  # cancelled to drop a silent socket
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
        self._writer = OrderedWriter(self.core, stream)
        self._keepalive = Keepalive(self.core, self._writer)

    def drop_handshake(self) -> None:
        """Too many handshakes, or shutdown: close this socket if it is still silent."""
        self._handshake_scope.cancel()

    def going_away(self) -> None:
        """Server shutdown: close with 1001 (from a sync context: the reader does the I/O)."""
        if self.core.state is ConnectionState.OPEN:
            self.core.close(1001, "server shutting down")
            self._to_app_ready.set()
            if self._task_group is not None:
                self._task_group.start_soon(self._flush_quietly)
        elif self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def run(self) -> None:
        try:
            request = await self._read_request()
            if request is None:
                return
            if not self.server.admit(self):
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
            self._bridge.scope["state"] = dict(self.lifespan_state)
            self._to_app.append(self._bridge.connect_message())
            if isinstance(self.stream, AsyncioSocketStream):
                self.stream.consumer = self._take_in_now
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                task_group.start_soon(self._read_frames)
                await self._run_app()
                await self._finish_closing()
                task_group.cancel_scope.cancel()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass  # the client vanished; nothing left to tell it
        finally:
            if isinstance(self.stream, AsyncioSocketStream):
                self.stream.consumer = None
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()

    # -- handshake ---------------------------------------------------------------------------

    async def _read_request(self) -> Request | HTTPExchange | None:
        """The upgrade request, or a plain HTTP one; None if the socket is done with."""
        config = self.config
        with self._handshake_scope, anyio.move_on_after(config.handshake_timeout):
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
        if self._handshake_scope.cancel_called:
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

    async def _call(self, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        """Run the app on one scope; True if it raised (the traceback is logged).

        Whatever the app raises (CancelledError, KeyboardInterrupt, SystemExit included)
        ends this connection only; a cancellation of our own scope (the server's shutdown,
        a signal) goes on up.
        """
        try:
            await self.app(scope, receive, send)
        except ClientDisconnected:
            return False
        except BaseException as exc:
            if _cancels_this_task(exc):
                raise
            logger.exception("%s - exception in the ASGI app", _peer(self.client_address))
            return True
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

    async def _run_app(self) -> None:
        try:
            await self._call_app()
        finally:
            self._app_done = True
            self._app_moved.set()

    async def _call_app(self) -> None:
        assert self._bridge is not None
        if await self._call(self._bridge.scope, self._receive, self._send):
            if self.core.state is ConnectionState.CONNECTING:
                await self._write(_INTERNAL_ERROR)
            elif self.core.state is ConnectionState.OPEN:
                self.core.close(1011, "")
                await self._flush_quietly()
            return
        if self.core.state is ConnectionState.CONNECTING:
            logger.error(
                "%s - the app returned without accepting or rejecting", _peer(self.client_address)
            )
            await self._write(_INTERNAL_ERROR)
        elif self.core.state is ConnectionState.OPEN:
            self.core.close(1000, "")
            await self._flush_quietly()

    @property
    def app(self) -> ASGIApp:
        return self.server.app

    async def _receive(self) -> dict[str, Any]:
        while not self._to_app:
            self._app_waiting = True
            self._app_moved.set()
            self._to_app_ready = self._new_event()
            await self._to_app_ready.wait()
        self._app_waiting = False
        message = self._to_app.popleft()
        if message["type"] == "websocket.disconnect":
            self._to_app.append(message)  # every later receive() sees the disconnect too
        return message

    async def _wait_until_the_app_is_ready(self) -> None:
        """Until the app has handled every delivered message and waits for the next one."""
        while not self._app_done and (self._to_app or not self._app_waiting):
            self._app_moved = self._new_event()
            await self._app_moved.wait()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._bridge is not None
        was_connecting = self.core.state is ConnectionState.CONNECTING
        self._bridge.apply_app_message(message)
        await self._flush()
        if was_connecting and self.core.state is not ConnectionState.CONNECTING:
            if self._answer_scope is not None:
                self._answer_scope.cancel()  # the reader may read on
            accepted = self.core.state is ConnectionState.OPEN
            if accepted and self.config.ping_interval is not None:
                assert self._task_group is not None
                # From the accept on: a keepalive started with the task group would find
                # the connection not yet open and end at once.
                self._task_group.start_soon(self._keep_alive, self.config.ping_interval)
            logger.info(
                '%s - "WebSocket %s" [%s]',
                _peer(self.client_address),
                self._bridge.scope["path"],
                "accepted" if accepted else "rejected",
            )
            if not accepted:
                self._deliver({"type": "websocket.disconnect", "code": 1006, "reason": ""})

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

    async def _flush_quietly(self) -> None:
        """Flush where nobody could act on a vanished client: the reader sees the EOF."""
        with contextlib.suppress(anyio.BrokenResourceError):
            await self._writer.flush()

    def _deliver(self, message: dict[str, Any]) -> None:
        self._to_app.append(message)
        self._to_app_ready.set()

    async def _read_frames(self) -> None:
        while self.core.state is not ConnectionState.CLOSED:
            self._reader_idle = True
            try:
                data: bytes | None = await (
                    self._read_before_the_answer()
                    if self.core.state is ConnectionState.CONNECTING
                    else self.stream.receive(self.config.read_size)
                )
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                data = None
            self._reader_idle = False
            if data != b"":  # b"": bytes the consumer took, whose handling it left to us
                try:
                    self.core.receive_data(data)
                except ProtocolError:
                    break
            await self._handle_events()
            await self._flush_quietly()
            if data is None:
                break
        self._closed.set()
        if not any(m["type"] == "websocket.disconnect" for m in self._to_app):
            code = self.core.close_code or 1006
            self._deliver({"type": "websocket.disconnect", "code": code, "reason": ""})

    async def _read_before_the_answer(self) -> bytes:
        """While the app decides (accept or reject), read at most ``max_request_size`` bytes.

        The client may already send frames; they wait in the core until ``accept()``. Past
        the bound the server stops reading, so the kernel's buffers fill and the client's
        ``send()`` blocks instead of our memory growing for as long as the app takes.
        Returns ``b""`` once the app has answered: the frames that came first are handled
        before anything else is read.
        """
        budget = self.config.max_request_size - self._read_before_answer
        with anyio.CancelScope() as self._answer_scope:
            if budget <= 0:
                await anyio.sleep_forever()
            data = await self.stream.receive(min(budget, self.config.read_size))
            self._read_before_answer += len(data)
            return data
        return b""

    async def _handle_events(self) -> None:
        assert self._bridge is not None
        if self._app_behind:
            self._app_behind = False
            await self._wait_until_the_app_is_ready()
        handed_over, self._handed_over = self._handed_over, None
        events = self.core.events()
        if handed_over is not None:
            events = itertools.chain((handed_over,), events)
        for event in events:
            if isinstance(event, Pong):
                self._keepalive.pong_received()
            elif isinstance(event, Closed):
                # Our close frame leaves before the app learns of the close, so an app
                # that returns at once cannot cut it off.
                await self._flush_quietly()
                self._closed.set()
            message = self._bridge.receive_message_for(event)
            if message is not None:
                self._deliver(message)
                if message["type"] == "websocket.receive" and self.core.has_pending_input:
                    await self._wait_until_the_app_is_ready()

    def _take_in_now(self, data: bytes) -> bool:
        """asyncio: take bytes in the transport's callback, if the app waits for them.

        Through the reader task, a message reaches the app two passes of the event loop
        after its bytes (the reader wakes, then the app); from here it takes one, which
        saves about a tenth of the server's CPU time per small message. Only what needs no
        waiting is done here: anything else (a close, a ping to answer, a second message the
        app is not ready for) is handed to the reader, which carries on where this stopped.
        """
        if not (
            self._reader_idle
            and self._app_waiting
            and not self._to_app
            and self.core.state is ConnectionState.OPEN
        ):
            return False
        stream, bridge = self.stream, self._bridge
        assert bridge is not None
        assert isinstance(stream, AsyncioSocketStream)
        self.core.receive_data(data)
        hand_over = False
        for event in self.core.events():
            if isinstance(event, Message):
                message = bridge.receive_message_for(event)
                assert message is not None
                self._deliver(message)
                if self.core.has_pending_input:
                    self._app_behind = hand_over = True
            elif isinstance(event, Pong):
                self._keepalive.pong_received()
            else:  # a ping (its pong is queued) or the close
                self._handed_over = None if isinstance(event, Ping) else event
                hand_over = True
            if hand_over:
                break
        if hand_over or self.core.wants_to_write:
            self._reader_idle = False
            stream.interrupt_receive()
        return True

    async def _finish_closing(self) -> None:
        """After the app: wait (bounded) for the peer to answer our close frame."""
        if self.core.state is ConnectionState.CLOSING:
            with anyio.move_on_after(self.config.close_timeout):
                await self._closed.wait()

    async def _keep_alive(self, interval: float) -> None:
        if await self._keepalive.run(interval, self.config.ping_timeout):
            logger.info("%s - keepalive ping timed out", _peer(self.client_address))
            self._deliver(
                {"type": "websocket.disconnect", "code": 1011, "reason": "keepalive ping timeout"}
            )
            self._closed.set()


def _peer(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"


def _max_message_size(app: ASGIApp, configured: int | None) -> int:
    """The server's limit if it was given one, else the app's own, else the default."""
    if configured is not None:
        return configured
    own = getattr(app, "max_message_size", None)
    return own if isinstance(own, int) and own > 0 else DEFAULT_MAX_MESSAGE_SIZE


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


async def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    handle_signals: bool = True,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (or cancellation); ``options`` are ServerConfig fields.

    Raises :class:`~panther_ws.hosting.lifespan.LifespanError` if the app's lifespan startup fails.
    """
    server = Server(app, ServerConfig(host=host, port=port, **options))
    startup_failed: LifespanError | None = None
    async with anyio.create_task_group() as task_group:
        if handle_signals:
            task_group.start_soon(_stop_on_signal, server)
        try:
            await server.serve(task_status=task_status)
        except LifespanError as exc:
            startup_failed = exc  # raised below, by itself rather than in an ExceptionGroup
        task_group.cancel_scope.cancel()
    if startup_failed is not None:
        raise startup_failed


async def _stop_on_signal(server: Server) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            logger.info("Received %s", signal.Signals(received).name)
            server.shutdown()
            return
