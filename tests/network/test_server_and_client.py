"""Our server and our client over real sockets on 127.0.0.1, on asyncio and trio."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import gc
import socket
import sys
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from panther_ws.client import connect
from panther_ws.network.connection import SocketConnection
from panther_ws.protocol import ClientConnection, ConnectionState
from panther_ws.server import Server, ServerConfig
from panther_ws_testing import WebsocketClosed, WebsocketRejected
from tests.network import apps

if sys.version_info < (3, 11):
    pass  # type: ignore[import-not-found,unused-ignore]

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
    async with (
        apps.deaf_server() as port,
        connect(f"ws://127.0.0.1:{port}/", ping_interval=0.05, ping_timeout=0.1) as ws,
    ):
        with anyio.fail_after(5), pytest.raises(WebsocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == 1011


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


async def test_an_idle_connection_keeps_no_event_queue_or_second_scope_of_its_own() -> None:
    # Each is 0.6-1 KiB per open idle connection (an empty deque alone is 760 bytes), and
    # 10,000 idle connections must fit where the websockets server fits them: made when a
    # wait or a message needs them, let go when the handshake is done. The one scope left
    # is the one shutdown cancels (a task group of the connection's would hold one too).
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send("warm")
        assert await ws.receive() == "warm"
        (connection,) = [
            o
            for o in gc.get_objects()
            # type(), not isinstance(): gc may list a dead weakref.proxy, which raises
            if type(o) is SocketConnection
            and o.server_address == ("127.0.0.1", server.port)
            and o.core.state is ConnectionState.OPEN
        ]
        held = [
            value
            for name in SocketConnection.__slots__
            if isinstance(
                value := getattr(connection, name, None),
                (anyio.Event, anyio.CancelScope, collections.deque),
            )
        ]
        assert held == [connection._scope]
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
                        type(candidate) is SocketConnection  # a dead proxy would raise
                        and candidate.server_address == ("127.0.0.1", server.port)
                        and candidate.core.state is ConnectionState.OPEN
                    ):
                        weakref.finalize(candidate, freed.set)
                del candidate
            with anyio.fail_after(5):
                await freed.wait()
        finally:
            gc.enable()


_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, payload under 126 bytes, all-zero mask)."""
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def _open_raw(port: int) -> socket.socket:
    """A websocket opened by hand, past its 101: no client task in this process."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    sock.sendall(_UPGRADE)
    answer = b""
    with anyio.fail_after(5):
        while b"\r\n\r\n" not in answer:
            await anyio.wait_readable(sock)
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


async def _read_raw(sock: socket.socket, count: int) -> bytes:
    data = b""
    with anyio.fail_after(5):
        while len(data) < count:
            await anyio.wait_readable(sock)
            chunk = sock.recv(65536)
            assert chunk, "the server closed the socket"
            data += chunk
    return data


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_idle_connection_has_one_task_on_asyncio() -> None:
    # The reader's task ends whenever the transport's callback can carry on alone (~3 KiB
    # per idle connection): only the connection's own task, the app's, is left waiting.
    import asyncio

    async with running() as server:
        assert server.port is not None
        before = len(asyncio.all_tasks())
        sockets = [await _open_raw(server.port) for _ in range(5)]
        try:
            await anyio.sleep(0.1)
            assert len(asyncio.all_tasks()) - before == 5
        finally:
            for sock in sockets:
                sock.close()


async def test_an_idle_connection_answers_a_ping_and_notices_the_peer_leave() -> None:
    disconnected: list[int] = []
    gone = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        disconnected.append(message["code"])
        gone.set()

    async with running(app) as server:
        assert server.port is not None
        sock = await _open_raw(server.port)
        try:
            await anyio.sleep(0.1)  # idle: on asyncio no task reads any more
            sock.sendall(_masked(0x9, b"still there?"))
            assert await _read_raw(sock, 14) == b"\x8a\x0cstill there?"  # the pong
            await anyio.sleep(0.1)
        finally:
            sock.close()  # gone without a close frame
        with anyio.fail_after(5):
            await gone.wait()
    assert disconnected == [1006]


async def test_a_slow_app_stops_the_server_reading_until_it_receives() -> None:
    released = anyio.Event()
    received: list[str] = []
    all_received = anyio.Event()
    expected = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await released.wait()
        while (message := await receive())["type"] == "websocket.receive":
            received.append(message["text"])
            if len(received) == expected:
                all_received.set()

    async with running(app) as server:
        assert server.port is not None
        sock = await _open_raw(server.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        burst = b"".join(_masked(0x1, b"%06d" % i + b"x" * 100) for i in range(10_000))
        sent = 0
        try:
            stalled = 0.0
            while stalled < 0.5 and sent < 64 * len(burst):
                try:
                    sent += sock.send(burst[sent % len(burst) :])
                    stalled = 0.0
                except BlockingIOError:
                    await anyio.sleep(0.05)
                    stalled += 0.05
            # Nothing reads past the first messages while the app does not receive: the
            # kernel's buffers fill and the peer's sends stop (70 MiB would go otherwise).
            assert stalled >= 0.5
            assert sent < 16 * len(burst)
            expected = sent // len(_masked(0x1, b"0" * 106))  # whole frames only
            released.set()
            with anyio.fail_after(10):
                await all_received.wait()
            assert received[:3] == [f"{i:06d}" + "x" * 100 for i in range(3)]
        finally:
            sock.close()


def test_an_idle_connection_answers_a_close_under_plain_asyncio_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # On asyncio an idle connection's close is parsed in the transport's callback, which
    # starts the reader's task again: outside any task, where, under a plain asyncio.run
    # (not anyio's, not pytest's), anyio cannot tell the backend. Had that failed, asyncio
    # would have aborted the socket, without a close frame.
    async def main() -> int | None:
        with anyio.fail_after(5):
            async with running() as server:
                async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
                    await ws.send("x")
                    assert await ws.receive() == "x"
                    await asyncio.sleep(0.05)  # the server's reader rests
        return ws.close_code

    assert contextvars.Context().run(asyncio.run, main()) == 1000  # a context with no backend
    assert "Fatal error" not in caplog.text
