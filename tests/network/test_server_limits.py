"""The server's limits hold against hostile peers: real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import struct
from typing import Any

import anyio
import anyio.abc
import pytest

from panther_ws import App, GenericWebsocket
from panther_ws.client import connect
from panther_ws.server import ServerConfig
from panther_ws_testing import WebsocketClosed, WebsocketRejected
from tests.network.test_server_and_client import running

pytestmark = pytest.mark.anyio

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (key 0, so the payload goes as is) of up to 64 KiB - 1."""
    if len(payload) < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload))
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, len(payload))
    return header + bytes(4) + payload


# -- sockets that never send a request ------------------------------------------------------


async def test_idle_sockets_do_not_take_the_slots_of_real_clients() -> None:
    dropped = 0
    ten_dropped = anyio.Event()

    async def idle(stream: anyio.abc.SocketStream) -> None:
        nonlocal dropped
        async with stream:
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()  # closed, with no HTTP response
        dropped += 1
        if dropped == 10:
            ten_dropped.set()

    async with running(max_connections=2, max_handshakes=10, handshake_timeout=30) as server:
        url = f"ws://127.0.0.1:{server.port}/echo"
        async with connect(url) as open_before, anyio.create_task_group() as idlers:
            for _ in range(20):
                idlers.start_soon(idle, await anyio.connect_tcp("127.0.0.1", server.port))
            with anyio.fail_after(5):  # far below the 30 s handshake timeout
                await ten_dropped.wait()  # the oldest made room for the newer ones
                async with connect(url) as newcomer:
                    await newcomer.send("in")
                    assert await newcomer.receive() == "in"
                    with pytest.raises(WebsocketRejected) as rejected:
                        async with connect(url):  # max_connections still counts
                            pass
                    assert rejected.value.status_code == 503
                await open_before.send("kept")
                assert await open_before.receive() == "kept"
            idlers.cancel_scope.cancel()
    assert dropped >= 10


async def test_shutdown_drops_idle_sockets_at_once() -> None:
    with anyio.fail_after(5):  # not the 30 s handshake timeout, nor the 10 s shutdown one
        async with running(handshake_timeout=30) as server:
            idle = await anyio.connect_tcp("127.0.0.1", server.port)
            async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
                await ws.send("after the idle one")  # so the server has accepted that one
                await ws.receive()
        with pytest.raises(anyio.EndOfStream):
            await idle.receive()
        await idle.aclose()


# -- bytes before accept() -------------------------------------------------------------------


async def test_frames_sent_before_accept_are_bounded_then_delivered_in_order() -> None:
    release = anyio.Event()
    received: list[int] = []
    done = anyio.Event()

    async def slow_auth(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await release.wait()  # e.g. an auth lookup that takes 15 s
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            received.append(int.from_bytes(message["bytes"][:4], "big"))
        done.set()

    frame_size = 16 * 1024
    frames = (
        client_frame(0x2, index.to_bytes(4, "big") * (frame_size // 4)) for index in range(4096)
    )
    async with running(slow_auth, lifespan="off") as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.setblocking(False)
            pending, sent, frames_sent = UPGRADE, 0, 0
            stalled = False
            while not stalled:  # stream frames until the server stops taking them (64 MiB)
                if not pending:
                    pending = next(frames, b"")
                    if not pending:
                        break
                    frames_sent += 1
                with anyio.move_on_after(0.5) as wait:
                    await anyio.wait_writable(sock)
                stalled = wait.cancelled_caught
                if not stalled:
                    count = sock.send(pending)
                    sent, pending = sent + count, pending[count:]
            # The kernel's buffers on both ends take ~4 MiB; the server's own reads, a
            # request's worth (16 KiB) beyond the first read, plus on asyncio its stream's
            # 256 KiB. Without a bound it takes all 64 MiB.
            assert stalled
            assert sent < 8 * 1024 * 1024
            release.set()
            pending += client_frame(0x8, struct.pack("!H", 1000))
            with anyio.fail_after(10):
                while pending:
                    await anyio.wait_writable(sock)
                    pending = pending[sock.send(pending) :]
                await done.wait()
    assert received == list(range(frames_sent))


async def test_the_client_may_leave_while_the_app_decides() -> None:
    disconnects: list[dict[str, Any]] = []
    disconnected = anyio.Event()

    async def slow_auth(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        disconnects.append(await receive())
        disconnected.set()

    async with running(slow_auth, lifespan="off") as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(UPGRADE + client_frame(0x1, b"early"))
        with anyio.fail_after(5):
            await disconnected.wait()
    assert disconnects == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


# -- message size: the app's own unless the server is given one -------------------------------


class Echo(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        await self.send(data)


BIG = "x" * (2 * 1024 * 1024)


async def test_the_apps_own_max_message_size_applies() -> None:
    app = App({"echo/": Echo}, max_message_size=32 * 1024 * 1024)
    async with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/echo/"
        async with connect(url, max_message_size=4 * 1024 * 1024) as ws:
            await ws.send(BIG)
            assert await ws.receive() == BIG


async def test_a_max_message_size_given_to_the_server_wins_over_the_apps() -> None:
    app = App({"echo/": Echo}, max_message_size=32 * 1024 * 1024)
    async with running(app, max_message_size=1024 * 1024) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/echo/") as ws:
            await ws.send(BIG)
            with pytest.raises(WebsocketClosed) as closed:
                await ws.receive()
    assert closed.value.code == 1009


# -- the client's own limit --------------------------------------------------------------------


@pytest.mark.parametrize("permessage_deflate", [True, False], ids=["compressed", "plain"])
async def test_our_client_refuses_a_message_over_its_limit_with_1009(
    permessage_deflate: bool,
) -> None:
    async def sends_16_mib(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": bytes(16 * 1024 * 1024)})  # ~16 KiB deflated
        await receive()

    async with running(sends_16_mib, lifespan="off") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url, permessage_deflate=permessage_deflate) as ws:
            with anyio.fail_after(5), pytest.raises(WebsocketClosed) as closed:
                await ws.receive()
        assert closed.value.code == 1009
        assert ws.close_code == 1009


@pytest.mark.parametrize("field", ["max_connections", "max_handshakes", "max_message_size"])
def test_a_limit_below_one_is_refused_when_configured(field: str) -> None:
    with pytest.raises(ValueError, match=f"ServerConfig.{field} must be positive, got 0"):
        ServerConfig(**{field: 0})  # type: ignore[arg-type]


async def test_frames_sent_with_the_request_are_answered_after_a_slow_accept() -> None:
    async def slow_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await anyio.sleep(0.2)  # the client's frames arrive meanwhile, then nothing more
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "bytes": message["bytes"]})

    async with running(slow_echo, lifespan="off") as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            frames = b"".join(client_frame(0x2, bytes([index]) * 3) for index in range(3))
            await stream.send(UPGRADE + frames)
            received = b""
            with anyio.fail_after(5):
                while received.count(b"\x82\x03") < 3:  # three unmasked 3-byte echoes
                    received += await stream.receive()
    assert received.startswith(b"HTTP/1.1 101 ")
    assert received.endswith(b"\x82\x03\x00\x00\x00\x82\x03\x01\x01\x01\x82\x03\x02\x02\x02")


def test_one_read_by_default_holds_a_64_kib_message_with_its_header() -> None:
    # Reads of 64 KiB split every 64 KiB message in two, so the core's fast path (a whole
    # frame in the buffer) never took one; the asyncio stream reads into one buffer per
    # event loop, so a larger read costs no memory per connection.
    assert ServerConfig().read_size >= 64 * 1024 + 14
