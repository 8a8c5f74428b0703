"""The shared read loop (FrameReader) over real loopback sockets, a raw peer on the other end."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from panther_ws.hosting.primitives import current_backend
from panther_ws.network.pump import FrameReader, Keepalive, OrderedWriter
from panther_ws.network.stream import AsyncioSocketStream, connect_tcp
from panther_ws.protocol import ClientConnection, ConnectionState, ServerConnection
from panther_ws.protocol.events import Accepted, Closed, Event, Message, Request

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

pytestmark = pytest.mark.anyio


class Consumer:
    """What the server's app or the client's user is to the reader: it may be ready or not."""

    def __init__(self) -> None:
        self.delivered: list[Event] = []
        self.ready = True
        self.became_ready = anyio.Event()
        self.got_one = anyio.Event()
        self.our_bytes_left_first: list[bool] = []  # per close: was our close frame written?
        self.core: ClientConnection | None = None

    def deliver(self, event: Event) -> None:
        if isinstance(event, Closed):
            assert self.core is not None
            self.our_bytes_left_first.append(not self.core.wants_to_write)
        self.delivered.append(event)
        self.got_one.set()

    def waits(self) -> bool:
        return self.ready

    async def wait_until_ready(self) -> None:
        while not self.ready:
            await self.became_ready.wait()


@asynccontextmanager
async def connected(
    consumer: Consumer,
) -> AsyncIterator[
    tuple[FrameReader, anyio.abc.ByteStream, anyio.abc.ByteStream, ServerConnection]
]:
    """A client core's reader and its stream (ours); the peer's accepted stream and core."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    peers: list[anyio.abc.SocketStream] = []
    arrived = anyio.Event()

    async def keep(stream: anyio.abc.SocketStream) -> None:
        peers.append(stream)
        arrived.set()
        await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, keep)
        stream = await connect_tcp("127.0.0.1", port)
        with anyio.fail_after(5):
            await arrived.wait()
        peer = peers[0]
        core = ClientConnection("127.0.0.1", "/", permessage_deflate=False)
        consumer.core = core
        server = ServerConnection(permessage_deflate=False)
        server.receive_data(core.data_to_send())
        assert any(isinstance(event, Request) for event in server.events())
        server.accept()
        core.receive_data(server.data_to_send())
        assert any(isinstance(event, Accepted) for event in core.events())
        writer = OrderedWriter(core, stream)
        reader = FrameReader(
            core,
            writer,
            Keepalive(core, writer),
            stream.receive,
            deliver=consumer.deliver,
            consumer_waits=consumer.waits,
            wait_for_consumer=consumer.wait_until_ready,
        )
        try:
            yield reader, stream, peer, server
        finally:
            await stream.aclose()
            task_group.cancel_scope.cancel()


async def test_the_next_frame_waits_until_the_consumer_is_ready() -> None:
    consumer = Consumer()
    async with connected(consumer) as (reader, _, peer, server):
        server.send("one")
        server.send("two")
        await peer.send(server.data_to_send())  # both in one write
        with anyio.fail_after(5):
            while not consumer.delivered:
                assert await reader.step()
        assert consumer.delivered == [Message("one")]
        consumer.ready = False
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader.step)
            await anyio.sleep(0.05)
            assert consumer.delivered == [Message("one")]  # "two" waits for the consumer
            consumer.ready = True
            consumer.became_ready.set()
        assert consumer.delivered == [Message("one"), Message("two")]


async def test_the_end_of_the_stream_is_reported_as_a_close_and_ends_the_loop() -> None:
    consumer = Consumer()
    async with connected(consumer) as (reader, _, peer, server):
        server.send("last")
        await peer.send(server.data_to_send())
        await peer.aclose()
        with anyio.fail_after(5):
            await reader.run()
    assert consumer.delivered == [Message("last"), Closed(1006, "")]


async def test_our_close_frame_is_written_before_the_close_is_delivered() -> None:
    consumer = Consumer()
    async with connected(consumer) as (reader, _, peer, server):
        server.close(4000, "bye")
        await peer.send(server.data_to_send())
        with anyio.fail_after(5):
            await reader.run()
        server.receive_data(await peer.receive())
        assert [e for e in server.events() if isinstance(e, Closed)] == [Closed(4000, "bye")]
        assert server.state is ConnectionState.CLOSED  # it got our answer
    assert consumer.delivered == [Closed(4000, "bye")]
    assert consumer.our_bytes_left_first == [True]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_waiting_consumer_gets_its_message_from_the_transports_callback() -> None:
    consumer = Consumer()
    async with connected(consumer) as (reader, stream, peer, server):
        assert current_backend() == "asyncio"
        assert isinstance(stream, AsyncioSocketStream)
        reader.take_bytes_from(stream)
        stepped = False

        async def step() -> None:
            nonlocal stepped
            await reader.step()
            stepped = True

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(step)
            await anyio.sleep(0.01)  # the reader now waits in receive()
            server.send("now")
            await peer.send(server.data_to_send())
            with anyio.fail_after(5):
                await consumer.got_one.wait()
            # Delivered while the reader task still waits for bytes: no pass through it.
            assert consumer.delivered == [Message("now")]
            assert not stepped
            task_group.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_started_reader_rests_while_idle_and_wakes_for_a_close() -> None:
    consumer = Consumer()
    ended = anyio.Event()
    async with connected(consumer) as (reader, stream, peer, server):
        assert isinstance(stream, AsyncioSocketStream)
        reads = 0
        reader_receive = stream.receive

        async def counted(max_bytes: int = 65536) -> bytes:
            nonlocal reads
            reads += 1
            return await reader_receive(max_bytes)

        stream.receive = counted  # type: ignore[method-assign]
        async with anyio.create_task_group() as task_group:
            reader.start(stream, task_group.start_soon, ended.set)
            await anyio.sleep(0.05)
            assert reads == 0  # nothing to wait for: no task waits in receive()
            server.send("hello")
            await peer.send(server.data_to_send())
            with anyio.fail_after(5):
                await consumer.got_one.wait()
            assert consumer.delivered == [Message("hello")]
            assert reads == 0  # parsed in the transport's callback
            server.close(1000, "done")
            await peer.send(server.data_to_send())
            with anyio.fail_after(5):
                await ended.wait()
        assert consumer.delivered == [Message("hello"), Closed(1000, "done")]
        assert consumer.our_bytes_left_first == [True]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_what_parsing_raises_in_the_transports_callback_surfaces_in_a_task() -> None:
    consumer = Consumer()

    def deliver(event: Event) -> None:
        raise RuntimeError(f"cannot take {event}")

    async with connected(consumer) as (reader, stream, peer, server):
        reader._deliver = deliver
        with pytest.raises(BaseExceptionGroup) as raised:
            async with anyio.create_task_group() as task_group:
                reader.start(stream, task_group.start_soon, lambda: None)
                await anyio.sleep(0.05)  # resting: the next bytes go to the callback
                server.send("boom")
                await peer.send(server.data_to_send())
                with anyio.fail_after(5):
                    await anyio.sleep_forever()
        (error,) = raised.value.exceptions
        assert isinstance(error, RuntimeError)
        assert str(error) == "cannot take Message(data='boom')"
