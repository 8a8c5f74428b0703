"""What the server and the client both do with a live core and its stream: read, write, ping."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import anyio.abc

from panther_ws.network.stream import AsyncioSocketStream
from panther_ws.protocol import Connection, ProtocolError
from panther_ws.protocol.connection import CLOSED, OPEN
from panther_ws.protocol.events import Closed, Event, Message, Pong

_STREAM_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)

# Starts a task (a task group's ``start_soon``); what the task raises is the owner's.
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class OrderedWriter:
    """Writes what a core queued to its stream, from any number of tasks, in order.

    One task writes at a time and, before it stops, also writes what others queued
    meanwhile: bytes leave in the order the core produced them, and a task that finds the
    socket busy returns once the writer has written its bytes too (the backpressure an
    app's ``send()`` relies on). No lock: the uncontended path, nearly every send, costs no
    more than the write itself.
    """

    __slots__ = ("_core", "_stream", "_writer_done", "_writing", "failed")

    def __init__(self, core: Connection, stream: anyio.abc.ByteStream) -> None:
        self._core = core
        self._stream = stream
        self._writing = False
        self._writer_done: anyio.Event | None = None
        self.failed = False  # the stream refused a write: the peer is gone

    async def flush(self) -> None:
        """Write everything queued; ``anyio.BrokenResourceError`` if the peer is gone."""
        await self._write(None)

    async def write_raw(self, data: bytes) -> None:
        """Write bytes that are not the core's (an HTTP error response), in turn."""
        await self._write(data)

    async def _write(self, raw: bytes | None) -> None:
        if self._writing:
            await self._wait_for_writer()
            if raw is None and not self.failed:
                return  # the writer before us took our bytes along
        if self.failed:
            raise anyio.BrokenResourceError("the peer is gone")
        self._writing = True
        try:
            if raw is not None:
                await self._stream.send(raw)
            while data := self._core.data_to_send():
                await self._stream.send(data)
        except _STREAM_GONE as exc:
            self.failed = True
            raise anyio.BrokenResourceError("the peer is gone") from exc
        finally:
            self._writing = False
            if self._writer_done is not None:
                self._writer_done.set()
                self._writer_done = None

    async def _wait_for_writer(self) -> None:
        while self._writing:
            if self._writer_done is None:
                self._writer_done = anyio.Event()
            await self._writer_done.wait()

    async def flush_quietly(self) -> None:
        """Flush where nobody could act on a vanished peer: the reader sees the end of it."""
        try:
            await self.flush()
        except anyio.BrokenResourceError:
            pass


class Keepalive:
    """Pings the peer every ``interval`` and gives up on it when a pong is ``timeout`` late."""

    __slots__ = ("_core", "_pong", "_writer")

    def __init__(self, core: Connection, writer: OrderedWriter) -> None:
        self._core = core
        self._writer = writer
        # Made by run(): most connections never ping, and an event is ~1 KiB per connection.
        self._pong: anyio.Event | None = None

    def pong_received(self) -> None:
        """Call for every ``Pong`` event the core reports."""
        if self._pong is not None:
            self._pong.set()

    async def run(self, interval: float, timeout: float) -> bool:
        """Ping until the connection leaves OPEN; True if the peer stopped answering.

        Then a 1011 close frame has been queued and, if the peer still reads, written.
        """
        while self._core.state is OPEN:
            await anyio.sleep(interval)
            if self._core.state is not OPEN:
                return False
            pong = self._pong = anyio.Event()
            self._core.ping(b"keepalive")
            await self._writer.flush_quietly()
            with anyio.move_on_after(timeout):
                await pong.wait()
            if not pong.is_set() and self._core.state is OPEN:
                self._core.close(1011, "keepalive ping timeout")
                await self._writer.flush_quietly()
                return True
        return False


_STREAM_ENDED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class FrameReader:
    """The one read loop of a live core, the server's and the client's: bytes in, events out.

    Events go to ``deliver`` in order; a pong also to the keepalive, and before a close is
    delivered our own close frame is written (so a consumer that returns at once cannot cut
    it off). Backpressure: after a message, the next frame is parsed only once
    ``wait_for_consumer()`` returns (the consumer took it and waits again), so a slow
    consumer slows the peer instead of growing a queue, and a message that precedes a
    protocol error is answered before the connection fails.

    :meth:`run` is the loop of a reader task; :meth:`step` is one turn of it, for a
    consumer that reads itself when it waits (then ``wait_for_consumer`` returns at once).
    :meth:`take_in_now` is the asyncio stream's consumer (see
    :attr:`panther_ws.network.stream.AsyncioSocketStream.consumer`): a message reaches a
    consumer that already waits straight from the transport's callback, one pass of the
    event loop earlier than through the reader task. :meth:`start` goes one step further
    for a server's many idle connections: on asyncio the reader's task ends whenever the
    callback can carry on alone, and a new one starts when there is waiting to do.
    """

    __slots__ = (
        "_behind",
        "_consumer_waits",
        "_core",
        "_deliver",
        "_ended",
        "_failure",
        "_handed_over",
        "_idle",
        "_interrupt",
        "_keepalive",
        "_parse_first",
        "_reading",
        "_receive",
        "_spawn",
        "_stream",
        "_wait_for_consumer",
        "_writer",
    )

    def __init__(
        self,
        core: Connection,
        writer: OrderedWriter,
        keepalive: Keepalive,
        receive: Callable[[], Awaitable[bytes]],
        *,
        deliver: Callable[[Event], None],
        consumer_waits: Callable[[], bool],
        wait_for_consumer: Callable[[], Awaitable[None]],
        parse_first: bool = False,
    ) -> None:
        self._core = core
        self._writer = writer
        self._keepalive = keepalive
        self._receive = receive
        self._deliver = deliver
        self._consumer_waits = consumer_waits
        self._wait_for_consumer = wait_for_consumer
        # Events that may wait in the core before anything is read: frames that came with
        # the client's 101, parsed at once; the rest of a read after a message, parsed once
        # the consumer is ready for more.
        self._parse_first = parse_first
        self._behind = False
        self._idle = False  # waiting in receive(): take_in_now() may parse meanwhile
        self._handed_over: Event | None = None  # what take_in_now() took out, for step()
        self._interrupt: Callable[[], None] | None = None
        self._failure: BaseException | None = None  # raised in take_in_now(), for step()
        # Set by start():
        self._stream: AsyncioSocketStream | None = None  # read with no task while idle
        self._spawn: Spawn | None = None
        self._ended: Callable[[], None] | None = None
        self._reading = False  # a task of start()'s reads (or has failed)

    async def run(self) -> None:
        """Read and deliver until the core is closed or the stream ends."""
        while self._core.state is not CLOSED and await self.step():
            pass

    def receive_with(self, receive: Callable[[], Awaitable[bytes]]) -> None:
        """Read with ``receive`` from now on (a server's, once its app has answered).

        A swap rather than a function that asks each time which phase it is in: the reader
        of an idle connection waits in its receive, and every coroutine it waits through is
        a frame kept per connection.
        """
        self._receive = receive

    def start(
        self,
        stream: anyio.abc.ByteStream,
        spawn: Spawn,
        ended: Callable[[], None],
    ) -> None:
        """Read and deliver in tasks ``spawn`` starts; ``ended()`` once :meth:`run` would end.

        On asyncio's stream a task reads only while there is something to wait for (the
        request's answer, a consumer that is not ready, a write, bytes the callback left):
        an idle connection's reader costs no task at all, the transport's callback parses
        what comes (:meth:`take_in_now`) and wakes a new task for anything else. Elsewhere
        (trio, TLS) one task reads throughout. What a task raises goes to ``spawn``'s owner.
        """
        self._spawn, self._ended = spawn, ended
        if isinstance(stream, AsyncioSocketStream):
            self._stream = stream
            self.take_bytes_from(stream)
            stream.wake_reader = self._wake
        self._reading = True
        spawn(self._read)

    def _wake(self) -> None:
        """The stream has something for ``receive()`` and no task reads: start one."""
        if not self._reading:
            self._reading = True
            assert self._spawn is not None  # set by start(), with this callback
            self._spawn(self._read)

    async def _read(self) -> None:
        core = self._core
        if core.has_pending_input and not self._behind:
            # Frames that came before the consumer's answer (the app accepted before this
            # task first ran): parsed before anything else is read.
            self._parse_first = True
        # What the callback left (an event, an error) is handled even if the core closed.
        while (
            core.state is not CLOSED or self._handed_over is not None or self._failure is not None
        ):
            if self._may_rest():
                self._reading = False  # the callback carries on; _wake() starts the next task
                return
            if not await self.step():
                break
        assert self._ended is not None  # set by start()
        self._ended()

    def _may_rest(self) -> bool:
        """Whether the transport's callback can take over from here (asyncio only).

        Only while the connection is open, nothing waits unparsed and the stream holds
        nothing for ``receive()``: the callback is offered only bytes that come later.
        """
        stream = self._stream
        if stream is None or self._behind or self._parse_first:
            return False
        if self._handed_over is not None:
            return False
        core = self._core
        if core.state is not OPEN or core.has_pending_input:
            return False
        if stream.receive_would_wait():
            self._idle = True  # take_in_now() may parse from now on
            return True
        return False

    async def step(self) -> bool:
        """Deliver what waits in the core, else read once and deliver what came.

        False once the stream has ended (or brought bytes the core refuses); by then the
        core has reported its close (1006 if the peer just left) to ``deliver``.
        """
        data: bytes | None = b""
        if self._parse_first:
            self._parse_first = False
        elif not self._behind:
            self._idle = True
            try:
                data = await self._receive()
            except _STREAM_ENDED:
                data = None
            finally:
                self._idle = False
            if data != b"":  # b"": take_in_now() took bytes and left their handling to us
                try:
                    self._core.receive_data(data)
                except ProtocolError:
                    return False
        if self._failure is not None:  # what the transport's callback could not raise
            failure, self._failure = self._failure, None
            raise failure
        if self._behind:  # the consumer has a message and more input waits: it comes first
            self._behind = False
            await self._wait_for_consumer()
        await self._handle_events()
        return data is not None

    async def _handle_events(self) -> None:
        core = self._core
        handed_over, self._handed_over = self._handed_over, None
        events = core.events()
        if handed_over is not None:
            events = itertools.chain((handed_over,), events)
        for event in events:
            if isinstance(event, Pong):
                self._keepalive.pong_received()
            elif isinstance(event, Closed):
                await self._writer.flush_quietly()
            self._deliver(event)
            if isinstance(event, Message) and core.has_pending_input:
                self._behind = True
                break
        await self._writer.flush_quietly()

    def take_bytes_from(self, stream: anyio.abc.ByteStream) -> None:
        """On asyncio's stream, parse in the transport's callback (:meth:`take_in_now`).

        Elsewhere (trio, TLS) nothing changes: the reader task reads.
        """
        if isinstance(stream, AsyncioSocketStream):
            self._interrupt = stream.interrupt_receive
            stream.consumer = self.take_in_now

    def take_in_now(self, data: bytes) -> bool:
        """Parse ``data`` in the transport's callback if the consumer waits for it.

        Only what needs no waiting is done here: a message for a consumer that waits, a pong.
        Anything else (a close, a ping to answer, a second message the consumer is not ready
        for) is left to :meth:`step`, woken through the stream, which carries on where this
        stopped. False (the bytes are not taken) unless the reader waits for bytes.
        """
        core = self._core
        if not (self._idle and self._consumer_waits() and core.state is OPEN):
            return False
        hand_over = False
        try:
            core.receive_data(data)
            for event in core.events():
                if isinstance(event, Message):
                    self._deliver(event)
                    hand_over = self._behind = core.has_pending_input
                elif isinstance(event, Pong):
                    self._keepalive.pong_received()
                    self._deliver(event)
                else:  # a ping (its pong is queued) or the close
                    self._handed_over = event
                    hand_over = True
                if hand_over:
                    break
        except Exception as exc:  # the transport would only log it: the reader raises it
            self._failure = exc
            hand_over = True
        if hand_over or core.wants_to_write:
            self._idle = False
            assert self._interrupt is not None  # set with the consumer
            self._interrupt()
        return True
