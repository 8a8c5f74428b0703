"""The server's asyncio socket stream over real loopback sockets: backpressure and endings."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
import anyio.abc
import pytest

from panther_ws.network.stream import READ_BUFFER_LIMIT, AsyncioSocketStream, open_listener

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the stream is asyncio's; on trio the server uses anyio's own


@asynccontextmanager
async def accepted() -> AsyncIterator[tuple[AsyncioSocketStream, socket.socket]]:
    """One server-side stream and the raw client socket connected to it."""
    listener = await open_listener("127.0.0.1", 0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    streams: list[anyio.abc.SocketStream] = []
    arrived = anyio.Event()

    async def keep(stream: anyio.abc.SocketStream) -> None:
        streams.append(stream)
        arrived.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, keep, task_group)
        with _client(port) as client:
            with anyio.fail_after(5):
                await arrived.wait()
            (stream,) = streams
            assert isinstance(stream, AsyncioSocketStream)
            try:
                yield stream, client
            finally:
                await stream.aclose()
                await listener.aclose()
                task_group.cancel_scope.cancel()


@contextmanager
def _client(port: int) -> Iterator[socket.socket]:
    client = socket.create_connection(("127.0.0.1", port))
    try:
        yield client
    finally:
        client.close()


async def test_bytes_flow_both_ways_and_addresses_are_known() -> None:
    async with accepted() as (stream, client):
        client.sendall(b"hello")
        with anyio.fail_after(5):
            assert await stream.receive() == b"hello"
        await stream.send(b"world")
        assert client.recv(5) == b"world"
        assert stream.extra(anyio.abc.SocketAttribute.remote_address) == client.getsockname()


async def test_a_reader_that_falls_behind_pauses_the_socket() -> None:
    async with accepted() as (stream, client):
        client.setblocking(False)
        chunk, sent = b"x" * 65536, 0
        # Flood until the kernel refuses more: the stream must stop reading rather than
        # buffer everything the client sends.
        with anyio.fail_after(10):
            while True:
                try:
                    sent += client.send(chunk)
                except BlockingIOError:
                    await anyio.sleep(0.05)  # let the loop read; retry once, then stop
                    try:
                        sent += client.send(chunk)
                    except BlockingIOError:
                        break
        protocol = stream._protocol
        assert protocol.reading_paused
        assert protocol.buffered <= READ_BUFFER_LIMIT + 65536
        assert sent > protocol.buffered  # the rest waits in the kernel, not in our memory
        received = 0
        with anyio.fail_after(10):
            while received < sent:
                received += len(await stream.receive())
        assert received == sent
        assert not protocol.reading_paused


async def test_end_of_stream_comes_after_the_buffered_bytes() -> None:
    async with accepted() as (stream, client):
        client.sendall(b"last words")
        client.shutdown(socket.SHUT_WR)
        with anyio.fail_after(5):
            assert await stream.receive() == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
        await stream.send(b"still writable")  # a half-closed peer can still be answered
        assert client.recv(100) == b"still writable"


async def test_a_reset_connection_breaks_sends() -> None:
    async with accepted() as (stream, client):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # linger 0: RST
        with anyio.fail_after(5), pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
            while True:
                await stream.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await stream.send(b"anyone?")


async def test_closing_does_not_wait_for_a_peer_that_stopped_reading() -> None:
    async with accepted() as (stream, _client_socket):
        send_failed = anyio.Event()

        async def flood() -> None:
            with pytest.raises((anyio.BrokenResourceError, anyio.ClosedResourceError)):
                while True:
                    await stream.send(b"x" * 65536)
            send_failed.set()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(flood)
            await anyio.sleep(0.3)  # the kernel buffers fill: the flood blocks in send()
            assert stream._protocol.writing_paused
            with anyio.fail_after(1):
                await stream.aclose()
                await send_failed.wait()


async def test_a_closed_stream_refuses_to_be_used() -> None:
    async with accepted() as (stream, _client_socket):
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"late")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_listener_is_anyios_own() -> None:
    listener = await open_listener("127.0.0.1", 0)
    try:
        assert type(listener).__module__.startswith("anyio")
    finally:
        await listener.aclose()


async def test_streams_share_the_loops_read_buffer_and_keep_their_own_bytes() -> None:
    # An idle connection costs no read buffer: every socket of the loop reads into one and
    # gets a copy of what it read, so sockets never see each other's bytes.
    async with accepted() as (first, first_client), accepted() as (second, second_client):
        assert first._protocol.read_buffer is second._protocol.read_buffer
        for round_number in range(20):
            first_client.sendall(b"a" * 1000 + bytes([round_number]))
            second_client.sendall(b"b" * 3000 + bytes([round_number]))
            await anyio.sleep(0.005)  # both arrive in the same pass of the loop, or not
            for stream, expected in ((first, b"a" * 1000), (second, b"b" * 3000)):
                received = b""
                with anyio.fail_after(5):
                    while len(received) < len(expected) + 1:
                        received += await stream.receive()
                assert received == expected + bytes([round_number])
        assert first._protocol.chunks is None  # nothing unread: no queue either
