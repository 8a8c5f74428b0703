"""Our server and our client over real sockets on 127.0.0.1, on asyncio and trio."""

from __future__ import annotations

import collections
import contextlib
import gc
import socket
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from panther_ws.client import connect
from panther_ws.network.connection import SocketConnection
from panther_ws.protocol import ClientConnection, ConnectionState, ServerConnection
from panther_ws.protocol.events import Request
from panther_ws.server import Server, ServerConfig
from panther_ws_testing import WebsocketClosed, WebsocketRejected
from tests.network import apps

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(app: object = apps.echo_app, **options: object) -> AsyncIterator[Server]:
    server = Server(app, ServerConfig(port=0, **options))  # type: ignore[arg-type]
    async with anyio.create_task_group() as task_group:
        await task_group.start(server.serve)
        yield server
        server.shutdown()


async def test_echo_text_bytes_and_json() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send("hello")
        assert await ws.receive() == "hello"
        await ws.send(b"\x00" * 200_000)
        assert await ws.receive_bytes() == b"\x00" * 200_000
        await ws.send({"a": [1, None]})
        assert await ws.receive_json() == {"a": [1, None]}


@pytest.mark.parametrize("arrival", ["in one write", "one frame per write"])
async def test_messages_pings_and_the_close_are_answered_in_order(arrival: str) -> None:
    # On asyncio the server takes bytes in the transport's callback while the app waits and
    # hands the rest (a second message, a ping, the close) to its reader: both paths here.
    async with running() as server:
        client = ClientConnection("127.0.0.1", "/echo", permessage_deflate=False)
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            await stream.send(client.data_to_send())
            while client.state is ConnectionState.CONNECTING:
                client.receive_data(await stream.receive())
            frames = []
            for act in (
                lambda: client.send("one"),
                lambda: client.ping(b"p"),
                lambda: client.send(b"two"),
                lambda: client.close(1000, "bye"),
            ):
                act()
                frames.append(client.data_to_send())
            if arrival == "in one write":
                await stream.send(b"".join(frames))
            else:
                for frame in frames:
                    await stream.send(frame)
                    await anyio.sleep(0.01)  # the app is back in receive() in between
            events = list(client.events())
            with anyio.fail_after(5):
                while client.state is not ConnectionState.CLOSED:
                    try:
                        client.receive_data(await stream.receive())
                    except anyio.EndOfStream:
                        client.receive_data(None)
                    events.extend(client.events())
    assert [type(event).__name__ for event in events] == [
        "Accepted",
        "Message",
        "Pong",
        "Message",
        "Closed",
    ]
    assert (events[1].data, events[3].data) == ("one", b"two")  # type: ignore[attr-defined]
    assert events[2].payload == b"p"  # type: ignore[attr-defined]
    assert (events[4].code, events[4].reason) == (1000, "bye")  # type: ignore[attr-defined]


async def test_the_close_is_answered_while_the_app_is_busy() -> None:
    async with running() as server:
        async with connect(f"ws://127.0.0.1:{server.port}/busy") as ws:
            await ws.send("unread")
            # Apart: bytes that arrive with an unread message wait until the app reads it.
            await anyio.sleep(0.1)
            with anyio.fail_after(2):  # the app sleeps for 30 s
                await ws.close(1000, "bye")
        assert (ws.close_code, ws.close_reason) == (1000, "bye")


async def test_subprotocol_is_negotiated() -> None:
    async with running() as server:
        async with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"


async def test_close_before_accept_is_http_403() -> None:
    async with running() as server:
        with pytest.raises(WebsocketRejected) as rejected:
            async with connect(f"ws://127.0.0.1:{server.port}/reject"):
                pass
        assert rejected.value.status_code == 403


async def test_denial_response_reaches_the_client() -> None:
    async with running() as server:
        with pytest.raises(WebsocketRejected) as rejected:
            async with connect(f"ws://127.0.0.1:{server.port}/deny"):
                pass
        assert (rejected.value.status_code, rejected.value.body) == (401, b"no token")
        assert (b"x-why", b"token") in rejected.value.headers


async def test_server_initiated_close() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/kick") as ws:
        assert await ws.wait_closed() == (4001, "kicked")
        with pytest.raises(WebsocketClosed):
            await ws.receive()


async def test_graceful_shutdown_closes_connections_with_1001() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        server.shutdown()
        assert await ws.wait_closed() == (1001, "server shutting down")


async def test_max_connections_refuses_with_503() -> None:
    async with running(max_connections=1) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/echo"):
            with pytest.raises(WebsocketRejected) as rejected:
                async with connect(f"ws://127.0.0.1:{server.port}/echo"):
                    pass
            assert rejected.value.status_code == 503


async def test_handshake_timeout_drops_a_silent_client() -> None:
    async with running(handshake_timeout=0.2) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            with anyio.fail_after(5):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
                    await stream.receive()


async def test_a_client_that_stops_reading_makes_the_app_wait() -> None:
    async with running() as server:
        sock = socket.create_connection(("127.0.0.1", server.port))  # type: ignore[arg-type]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            b"GET /flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        try:
            await anyio.sleep(0.5)
            # 2000 x 64 KiB = 125 MiB would be queued without backpressure; the kernel
            # buffers hold a few MiB at most, so the app must be blocked in send().
            assert 0 < len(apps.SENT) < 200
        finally:
            sock.close()


async def test_keepalive_pings_are_answered_by_our_client() -> None:
    async with running(ping_interval=0.05, ping_timeout=2) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
            await anyio.sleep(0.3)
            await ws.send("still here")
            assert await ws.receive() == "still here"


@pytest.mark.parametrize("accept_after", [0, 0.2], ids=["at once", "after a slow connect"])
async def test_a_client_that_never_answers_pings_is_closed_with_1011(accept_after: float) -> None:
    disconnects: list[dict[str, object]] = []
    disconnected = anyio.Event()

    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await anyio.sleep(accept_after)  # the keepalive starts with the connection, not before
        await send({"type": "websocket.accept"})
        disconnects.append(await receive())
        disconnected.set()

    async with running(app, lifespan="off", ping_interval=0.05, ping_timeout=0.1) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            core = ClientConnection("127.0.0.1", "/")
            await stream.send(core.data_to_send())
            with anyio.fail_after(5):
                with contextlib.suppress(anyio.EndOfStream):
                    while not disconnects:  # read, so the server's pings arrive; never answer
                        core.receive_data(await stream.receive())
                        list(core.events())
                        core.data_to_send()  # the automatic pongs are dropped, not sent
                await disconnected.wait()  # the server hung up; its app may still be on the way
            assert core.close_code == 1011
    assert disconnects == [
        {"type": "websocket.disconnect", "code": 1011, "reason": "keepalive ping timeout"}
    ]


async def test_our_client_gives_up_on_a_server_that_never_answers_pings() -> None:
    async def deaf_server(stream: anyio.abc.SocketStream) -> None:
        core = ServerConnection()
        async with stream:
            while core.state is ConnectionState.CONNECTING:
                core.receive_data(await stream.receive())
                for event in core.events():
                    if isinstance(event, Request):
                        core.accept()
            await stream.send(core.data_to_send())
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:  # read and ignore everything, pings included
                    await stream.receive()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, deaf_server)
        async with connect(f"ws://127.0.0.1:{port}/", ping_interval=0.05, ping_timeout=0.1) as ws:
            with anyio.fail_after(5), pytest.raises(WebsocketClosed) as closed:
                await ws.receive()
        assert closed.value.code == 1011
        task_group.cancel_scope.cancel()


async def test_a_refused_tcp_connection_is_an_os_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        async with connect(f"ws://127.0.0.1:{port}/"):
            pass


async def test_a_list_as_close_reason_before_accept_is_http_403_as_on_uvicorn() -> None:
    """FastAPI's query-validation rejection: the reason never reaches the wire."""

    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": [{"loc": ["token"]}]})

    async with running(app) as server:
        with pytest.raises(WebsocketRejected) as rejected:
            async with connect(f"ws://127.0.0.1:{server.port}/"):
                pass
    assert rejected.value.status_code == 403


async def test_an_app_that_returns_while_open_closes_with_1000() -> None:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hi"})

    async with running(app) as server, connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert await ws.receive() == "hi"
        with anyio.fail_after(5):
            assert await ws.wait_closed() == (1000, "")


async def test_an_idle_connection_keeps_no_event_scope_or_queue_of_its_own() -> None:
    # Each is 0.6-1 KiB per open idle connection (an empty deque alone is 760 bytes), and
    # 10,000 idle connections must fit where the websockets server fits them: made when a
    # wait or a message needs them, let go when the handshake is done.
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send("warm")
        assert await ws.receive() == "warm"
        (connection,) = [
            o
            for o in gc.get_objects()
            if isinstance(o, SocketConnection)
            and o.server_address == ("127.0.0.1", server.port)
            and o.core.state is ConnectionState.OPEN
        ]
        held = [
            value
            for value in vars(connection).values()
            if isinstance(value, (anyio.Event, anyio.CancelScope, collections.deque))
        ]
        assert held == []
        assert connection._inbox.messages is not None  # the echo's message made the queue
        assert not connection._inbox.messages


async def test_a_finished_connection_is_freed_without_the_cycle_collector() -> None:
    # The cycle collector's passes cost a server with thousands of connections dearly: the
    # reader, which holds the connection's bound methods, is let go when the socket ends.
    freed = anyio.Event()
    async with running() as server:
        gc.disable()
        try:
            async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
                await ws.send("x")
                assert await ws.receive() == "x"
                for candidate in gc.get_objects():
                    if (
                        isinstance(candidate, SocketConnection)
                        and candidate.server_address == ("127.0.0.1", server.port)
                        and candidate.core.state is ConnectionState.OPEN
                    ):
                        weakref.finalize(candidate, freed.set)
                del candidate
            with anyio.fail_after(5):
                await freed.wait()
        finally:
            gc.enable()
