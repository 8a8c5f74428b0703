"""The reference server: its configuration, the listener, lifespan and shutdown.

Everything protocol-shaped happens in ``panther_ws.protocol``, what an app is owed in
``panther_ws.hosting``, and one socket's websocket in :mod:`panther_ws.network.connection`;
this module accepts sockets, counts them against the limits and stops them all on shutdown.
It runs on asyncio and on trio.
"""

from __future__ import annotations

import logging
import signal
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.abc

from panther_ws.hosting.lifespan import LifespanError, LifespanRunner
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp
from panther_ws.network.connection import SocketConnection
from panther_ws.network.stream import READ_SIZE, open_listener
from panther_ws.network.tasks import owned_tasks
from panther_ws.protocol import DEFAULT_MAX_MESSAGE_SIZE

logger = logging.getLogger("panther_ws.server")


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
    read_size: int = READ_SIZE

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
        self._handshakes: dict[SocketConnection, None] = {}  # still reading a request, oldest first
        self._connections: set[SocketConnection] = set()  # past the request: the app has them
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
        """The app's lifespan startup in ``config.lifespan``'s mode; None without one."""
        lifespan = LifespanRunner(self.app, mode=self.config.lifespan)
        await lifespan.startup(task_group)
        return lifespan if lifespan.supported else None

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
        async with owned_tasks() as connections:
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
        def handle(stream: anyio.abc.SocketStream) -> Coroutine[Any, Any, None]:
            # The connection's own coroutine is the task's: a coroutine of ours around it
            # would be one more frame kept for as long as the connection lives (~0.3 KiB).
            connection = SocketConnection(
                stream,
                app=self.app,
                config=self.config,
                max_message_size=self.max_message_size,
                primitives=self.primitives,
                lifespan_state=state,
                admit=self.admit,
                spawn=connections.start_soon,
                finished=self._finished,
            )
            self._begin_handshake(connection)
            return connection.run()

        with accepting:
            await listener.serve(handle, task_group=connections)
        self._accept_stopped.set()

    def _begin_handshake(self, connection: SocketConnection) -> None:
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

    def _finished(self, connection: SocketConnection) -> None:
        """The socket is closed: it counts no more, and shutdown may be done waiting."""
        self._handshakes.pop(connection, None)
        self._connections.discard(connection)
        if self._stop.is_set() and not self._connections and not self._handshakes:
            self._drained.set()

    def admit(self, connection: SocketConnection) -> bool:
        """The request is complete: it takes a connection slot, if one is free."""
        self._handshakes.pop(connection, None)
        if len(self._connections) >= self.config.max_connections:
            return False
        self._connections.add(connection)
        return True


def _max_message_size(app: ASGIApp, configured: int | None) -> int:
    """The server's limit if it was given one, else the app's own, else the default."""
    if configured is not None:
        return configured
    own = getattr(app, "max_message_size", None)
    return own if isinstance(own, int) and own > 0 else DEFAULT_MAX_MESSAGE_SIZE


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
