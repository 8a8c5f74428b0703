"""``ASGIWebsocketTransport``: an httpx transport for users who already test with httpx-ws.

``httpx_ws.aconnect_ws(url, client)`` upgrades through it: the request becomes real bytes for
a :class:`ServerConnection`, the app runs behind the core's ASGI bridge, and httpx-ws gets a
network stream of real frames. The app is hosted by the server's own
:class:`~panther_ws.hosting.host.ConnectionHost`, so httpx-ws sees what a client of
``panther-ws serve`` sees: a ``WebSocketUpgradeError`` with status 500 for an app that ends
before answering, a 1000 close for one that returns while open, 1011 for one that raises.
Each connection gets its own scope and its own app task, and the app's exception is raised
with its own type when the transport is left (outside httpx-ws's task group, so not in an
ExceptionGroup). Plain HTTP requests go to the app through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

import anyio
import httpx

from panther_ws.hosting.host import AppInbox, ConnectionHost
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp
from panther_ws.protocol import ProtocolError, ServerConnection
from panther_ws.protocol.asgi import ASGIConnectionBridge
from panther_ws.protocol.connection import CLOSED
from panther_ws.protocol.events import Closed, Request
from panther_ws_testing._apps import AppTask, AppTasks


class _AppStream:
    """The network stream httpx-ws reads and writes: the server side of one connection.

    The app runs behind the server's :class:`ConnectionHost`; the bytes it sends wait here
    until httpx-ws reads them.
    """

    def __init__(
        self, bridge: ASGIConnectionBridge, primitives: Primitives, timeout: float | None
    ) -> None:
        self._bridge = bridge
        self._server = bridge.connection
        self._timeout = math.inf if timeout is None else timeout
        self._app = AppInbox(primitives)
        self.host = ConnectionHost(
            bridge, self._app, bridge.scope, flush=self._flush, report=self._reported
        )
        self._outgoing = bytearray()
        self._reader_wakeup = anyio.Event()
        self.app_done = anyio.Event()
        self.app_error: BaseException | None = None
        self.task: AppTask | None = None

    def _reported(self, error: BaseException) -> BaseException | None:
        # Kept before the host's policy runs: the test may see the close or rejection first.
        assert self.task is not None
        self.app_error = self.task.reported(error, self._bridge.scope["path"])
        return self.app_error

    async def run_app(self, app: ASGIApp) -> None:
        try:
            await self.host.run(app)
        finally:
            self.app_done.set()
            self._reader_wakeup.set()

    async def _flush(self) -> None:
        data = self._server.data_to_send()
        if data:
            self._outgoing += data
            self._reader_wakeup.set()

    async def wait_for_handshake(self) -> bytes:
        """The server's answer to the upgrade (101 or a refusal), once the app decided."""
        with anyio.move_on_after(self._timeout):
            while not self._outgoing and not self.app_done.is_set():
                self._reader_wakeup = anyio.Event()
                await self._reader_wakeup.wait()
        if not self.host.answered:
            raise TimeoutError(f"the app did not accept or reject within {self._timeout} s")
        head, separator, rest = bytes(self._outgoing).partition(b"\r\n\r\n")
        self._outgoing = bytearray(rest)
        return head + separator

    def raise_app_error(self) -> None:
        error, self.app_error = self.app_error, None
        if error is not None:
            raise error

    # -- httpcore's AsyncNetworkStream surface ---------------------------------------------

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while not self._outgoing and not self.app_done.is_set():
            self._reader_wakeup = anyio.Event()
            await self._reader_wakeup.wait()
        data = bytes(self._outgoing[:max_bytes])
        del self._outgoing[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._server.receive_data(buffer)
        except ProtocolError:
            return  # bytes after the close: the client's problem, as on a real socket
        app, bridge = self._app, self._bridge
        for event in self._server.events():
            if isinstance(event, Closed):
                app.disconnect(event.code, event.reason)
                continue
            message = bridge.receive_message_for(event)
            if message is not None:
                app.deliver(message)
        await self._flush()

    async def aclose(self) -> None:
        """httpx-ws is done with the stream: the app hears of it, and is waited for.

        Its exception is not raised here, inside httpx-ws's task group, where it would
        reach the test wrapped in an ExceptionGroup: the transport raises it on exit.
        """
        if self._server.state is not CLOSED:
            self._server.receive_data(None)
            await self.write(b"")
        with anyio.move_on_after(self._timeout):
            await self.app_done.wait()

    def get_extra_info(self, info: str) -> Any:
        return None


class ASGIWebsocketTransport(httpx.AsyncBaseTransport):
    """An httpx transport that serves websockets (and HTTP) from an ASGI app, in memory.

    Use it as an async context manager, or through ``httpx.AsyncClient(transport=...)``,
    which enters and exits it with the client; both at once is fine (the outermost exit
    closes it), and it can be entered again after it was closed.
    """

    def __init__(
        self,
        app: ASGIApp | Any,
        *,
        client: tuple[str, int] = ("127.0.0.1", 123),
        root_path: str = "",
        timeout: float | None = 5.0,
    ) -> None:
        self.app = app
        self.client = client
        self.root_path = root_path
        self.timeout = timeout
        self._http = httpx.ASGITransport(app=app, root_path=root_path, client=client)
        self._apps: AppTasks | None = None
        self._primitives: Primitives | None = None
        self._entered = 0  # nested entries: ``async with transport`` around an AsyncClient
        self._streams: list[_AppStream] = []

    async def __aenter__(self) -> ASGIWebsocketTransport:
        if self._entered == 0:
            self._primitives = Primitives()
            self._apps = await AppTasks(self._primitives, self.timeout).__aenter__()
        self._entered += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self._entered == 0:
            raise RuntimeError("the transport was exited more often than it was entered")
        self._entered -= 1
        if self._entered > 0 or self._apps is None:
            return
        apps, self._apps = self._apps, None
        streams, self._streams = self._streams, []
        try:
            for stream in streams:
                await stream.aclose()
        finally:
            await apps.__aexit__(None, None, None)
        for stream in streams:
            stream.raise_app_error()  # here, outside httpx-ws's task group: its own type

    async def aclose(self) -> None:
        """Nothing to do: whoever entered the transport closes it by leaving."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("upgrade", "").lower() != "websocket":
            return await self._http.handle_async_request(request)
        if self._apps is None or self._primitives is None:
            raise RuntimeError(
                "enter the transport first: 'async with ASGIWebsocketTransport(app) as t:' "
                "or 'async with httpx.AsyncClient(transport=t)'"
            )
        server = ServerConnection()
        try:
            server.receive_data(_request_bytes(request))
        except ProtocolError as exc:
            return httpx.Response(400, content=str(exc).encode(), request=request)
        (request_event,) = [event for event in server.events() if isinstance(event, Request)]
        port = request.url.port or (443 if request.url.scheme in ("https", "wss") else 80)
        bridge = ASGIConnectionBridge(
            server,
            request_event,
            client=self.client,
            server=(request.url.host, port),
            scheme="wss" if request.url.scheme in ("https", "wss") else "ws",
            root_path=self.root_path,
        )
        stream = _AppStream(bridge, self._primitives, self.timeout)
        self._streams.append(stream)
        stream.task = self._apps.start(
            stream.run_app(self.app), name=f"app for {request_event.path!r}"
        )
        head = await stream.wait_for_handshake()
        status, headers = _parse_head(head)
        if status == 101:
            return httpx.Response(
                101, headers=headers, extensions={"network_stream": stream}, request=request
            )
        body = await stream.read(1 << 30)
        return httpx.Response(status, headers=headers, content=body, request=request)


def _request_bytes(request: httpx.Request) -> bytes:
    target = request.url.raw_path
    lines = [b"GET " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    status_line, *header_lines = head.rstrip(b"\r\n").split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    return status, headers
