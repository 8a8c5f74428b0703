"""The network client's session API: the same names as the test client's."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import pytest

from panther_ws.client import connect
from panther_ws.network.session import ReceiveTimeout, WebsocketClosed
from panther_ws.protocol import ServerConnection
from panther_ws.protocol.events import Closed, Event, Message, Request
from tests.network.test_server_and_client import running

pytestmark = pytest.mark.anyio


async def test_typed_sends() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send_text("hi")
        assert await ws.receive() == "hi"
        await ws.send_bytes(b"\x00\x01")
        assert await ws.receive() == b"\x00\x01"
        await ws.send_json("")  # a JSON string, not an empty text message
        assert await ws.receive() == '""'
        await ws.send_json({"a": [1]}, mode="binary")
        assert await ws.receive() == b'{"a":[1]}'
        with pytest.raises(TypeError, match="send_text"):
            await ws.send_text(b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="send_bytes"):
            await ws.send_bytes("x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mode"):
            await ws.send_json(1, mode="json")  # type: ignore[arg-type]


async def test_ping_returns_when_the_pong_arrived() -> None:
    # /busy never reads: the server's core still answers the ping
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/busy") as ws:
        with anyio.fail_after(5):
            await ws.ping(b"one")
            await ws.ping()


async def test_ping_fails_with_the_close_when_the_server_closes_first() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/kick") as ws:
        assert await ws.wait_closed() == (4001, "kicked")
        with pytest.raises(WebsocketClosed):
            await ws.ping(b"late")


async def test_receive_nothing_passes_on_silence_and_names_a_message() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.receive_nothing(timeout=0.05)
        await ws.send("surprise")
        with pytest.raises(AssertionError, match="surprise"):
            await ws.receive_nothing(timeout=5)  # returns as soon as it arrives


async def test_await_connect_then_close() -> None:
    async with running() as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}/whoami", headers={"x-token": "t"})
        try:
            assert await ws.receive() == "t"  # sent with the 101: read on demand
            await ws.ping(b"p")
            await ws.send_text("echo")
            assert await ws.receive() == "echo"
        finally:
            await ws.close()
        assert ws.close_code == 1000
        with pytest.raises(WebsocketClosed):
            await ws.send("after")


async def test_await_connect_keeps_messages_that_arrive_while_pinging() -> None:
    async with running() as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}/echo")
        try:
            await ws.send("first")
            await ws.ping(b"p")  # the echo may arrive before the pong
            assert await ws.receive() == "first"
        finally:
            await ws.close()


async def test_await_connect_refuses_a_keepalive() -> None:
    with pytest.raises(ValueError, match="async with"):
        await connect("ws://127.0.0.1:9/", ping_interval=1)


@pytest.mark.parametrize("opened_by", ["async with", "await"])
async def test_a_message_that_came_with_the_101_is_answered_before_a_protocol_error(
    opened_by: str,
) -> None:
    # Autobahn 3.2's shape: the 101, a text message and a frame with a reserved bit set, in
    # one write. The echo of the message must leave before the client fails with 1002.
    replies: list[Event] = []
    handled = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        server = ServerConnection(permessage_deflate=False)
        while not any(isinstance(event, Request) for event in server.events()):
            server.receive_data(await stream.receive())
        server.accept()
        reserved_bit_frame = b"\xc1\x02hi"  # FIN + RSV1 + text, no extension agreed on
        await stream.send(server.data_to_send() + b"\x81\x05hello" + reserved_bit_frame)
        with anyio.move_on_after(5):
            while not any(isinstance(event, Closed) for event in replies):
                server.receive_data(await stream.receive())
                replies.extend(server.events())
        await stream.aclose()
        handled.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, handle)
        url = f"ws://127.0.0.1:{port}/"
        with anyio.fail_after(10), pytest.raises(WebsocketClosed) as closed:
            if opened_by == "await":
                ws = await connect(url)
                try:
                    await ws.send(await ws.receive())
                    await ws.receive()
                finally:
                    await ws.close()
            else:
                async with connect(url) as ws:
                    await ws.send(await ws.receive())
                    await ws.receive()
        with anyio.fail_after(10):  # the client's sends need not yield to the server
            await handled.wait()
        task_group.cancel_scope.cancel()
    assert closed.value.code == 1002
    assert replies[0] == Message("hello")
    last = replies[-1]
    assert isinstance(last, Closed)
    assert last.code == 1002


async def test_bytes_like_values_are_sent_as_binary() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send(bytearray(b"ba"))
        assert await ws.receive() == b"ba"
        await ws.send(memoryview(b"mv"))
        assert await ws.receive() == b"mv"
        await ws.send([1, "two"])
        assert await ws.receive() == '[1,"two"]'


async def test_receive_timeouts_hold_while_messages_flow_and_a_shorter_one_still_fires() -> None:
    # One timer per session: a long timeout arms it far ahead; a shorter one must re-arm it.
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        for number in range(50):
            await ws.send(str(number))
            assert await ws.receive(timeout=30) == str(number)
        with anyio.fail_after(5), pytest.raises(ReceiveTimeout, match=r"waited 0\.05 s"):
            await ws.receive(timeout=0.05)
        await ws.send("still open")
        assert await ws.receive(timeout=30) == "still open"
        with anyio.fail_after(5), pytest.raises(ReceiveTimeout):
            await ws.receive(timeout=0.05)


async def test_a_refused_connection_to_a_name_keeps_its_type_and_names_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://localhost:{port}/"
    with pytest.raises(
        ConnectionRefusedError, match=f"cannot connect to {url}: connection refused"
    ):
        await connect(url)


async def test_a_second_task_waiting_to_receive_is_told_not_left_hanging() -> None:
    async with running() as server, connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(ws.receive)
            await anyio.sleep(0.05)  # the first receive waits
            with pytest.raises(RuntimeError, match="one task at a time"):
                await ws.receive()
            await ws.send("for the first")
        await ws.send("and the next")
        assert await ws.receive() == "and the next"
