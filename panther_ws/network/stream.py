"""Sockets on asyncio, the server's and the client's: anyio's stream interface at the cost
of a bare transport.

anyio's asyncio ``SocketStream`` resumes and pauses the transport's reading around every
``receive()`` (two ``epoll_ctl`` system calls and the selector's bookkeeping per message) and
yields to the event loop after every ``send()``. Both are sound for a general stream; for a
websocket server they are most of the cost of a small message. This stream keeps reading
until ``READ_BUFFER_LIMIT`` bytes wait unread (then pauses: the peer slows down, memory stays
bounded), returns buffered bytes without a detour through the event loop, and makes ``send()``
wait only while the socket cannot take more (the write buffer limit is 0, as in anyio: a
send returns once the kernel has the bytes, so a slow reader slows the app that writes).

One more saving is the reader's to take: a ``consumer`` may take bytes straight from the
transport's callback (see :attr:`AsyncioSocketStream.consumer`), so the app (or the client's
user) sees a message one pass of the event loop earlier than through a reader task's
``receive()``; and with :attr:`AsyncioSocketStream.wake_reader` a reader needs no task of
its own while it waits for bytes (an idle server connection's largest cost).

:func:`open_listener` returns anyio's listener on trio and wraps it on asyncio, and
:func:`connect_tcp` anyio's stream on trio and ours on asyncio, so the server and the client
each have one code path: everything else stays on anyio.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from panther_ws.hosting.primitives import current_backend

READ_BUFFER_LIMIT = 256 * 1024
# The loop's one read buffer (below): one per loop, not per socket, so it can be large
# enough for a 64 KiB message and its header to come in one read, which the core then
# parses whole on its fast path instead of frame piece by frame piece.
READ_SIZE = 256 * 1024
_READ_PAST_LIMIT = 64 * 1024


async def open_listener(host: str, port: int) -> anyio.abc.Listener[anyio.abc.SocketStream]:
    """A TCP listener whose streams are :class:`AsyncioSocketStream` on asyncio."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    if current_backend() != "asyncio":
        return listener
    return _AsyncioListener(listener)


async def connect_tcp(
    host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
) -> anyio.abc.ByteStream:
    """A TCP connection, :class:`AsyncioSocketStream` on asyncio; TLS on top if asked.

    The client's half of :func:`open_listener`. An address literal connects at once; a name
    is resolved first and its addresses tried in turn; when all fail, the first error is
    raised (``ConnectionRefusedError``...), as anyio's ``connect_tcp`` reports it.
    """
    stream: anyio.abc.ByteStream
    if current_backend() != "asyncio":
        stream = await anyio.connect_tcp(host, port)
    else:
        stream = await _asyncio_connect(host, port)
    if ssl_context is None:
        return stream
    try:
        return await TLSStream.wrap(
            stream, hostname=host, ssl_context=ssl_context, standard_compatible=False
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


async def _asyncio_connect(host: str, port: int) -> AsyncioSocketStream:
    loop = asyncio.get_running_loop()
    addresses: list[tuple[int, str]] = [(0, host)]  # a literal: asyncio does not resolve it
    if not _is_address(host):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [(int(family), str(address[0])) for family, *_, address in infos]
    errors: list[OSError] = []
    for family, address in addresses:
        try:
            transport, protocol = await loop.create_connection(
                _Protocol, address, port, family=family
            )
        except OSError as exc:
            errors.append(exc)
            continue
        return AsyncioSocketStream(transport, protocol)
    if not errors:
        raise OSError(f"{host} has no address")
    raise errors[0]


def receiver(stream: anyio.abc.ByteStream, max_bytes: int) -> Callable[[], Awaitable[bytes]]:
    """``stream.receive(max_bytes)``, with as little as can be left suspended while it waits.

    A reader waits in it for as long as its connection is idle. On trio's sockets each frame
    of that wait counts for every idle connection: anyio's ``receive()``, trio's ``recv()``
    and its helper are ~1.1 KiB of the ~3 a waiting reader holds, so this waits on the raw
    socket itself, with trio's checkpoints and anyio's exceptions (``EndOfStream``,
    ``BrokenResourceError``, ``ClosedResourceError`` if the stream is closed meanwhile).
    Elsewhere (asyncio: see :class:`AsyncioSocketStream`; TLS) it is the stream's own.
    """
    if current_backend() != "trio" or not isinstance(stream, anyio.abc.SocketStream):
        return functools.partial(stream.receive, max_bytes)
    return _TrioReceiver(stream.extra(anyio.abc.SocketAttribute.raw_socket), max_bytes)


class _TrioReceiver:
    """:func:`receiver` on trio: an object with slots, smaller than a closure and its cells."""

    __slots__ = ("_max_bytes", "_sock")

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self._sock = sock
        self._max_bytes = max_bytes

    async def __call__(self) -> bytes:
        import trio

        await trio.lowlevel.checkpoint_if_cancelled()
        data = self._receive_now()
        if data is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        while True:
            try:
                await trio.lowlevel.wait_readable(self._sock)
            except trio.ClosedResourceError as exc:
                raise anyio.ClosedResourceError from exc
            data = self._receive_now()
            if data is not None:
                return data

    def _receive_now(self) -> bytes | None:
        try:
            data = self._sock.recv(self._max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:  # reset, or closed by aclose() (a bad descriptor)
            raise anyio.BrokenResourceError from exc
        if not data:
            raise anyio.EndOfStream
        return data


def _is_address(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


class _AsyncioListener(anyio.abc.Listener[anyio.abc.SocketStream]):
    """anyio's listener (address resolution, dual stack, options) with our streams."""

    def __init__(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        self._listener = listener
        sub_listeners = getattr(listener, "listeners", [listener])
        self._sockets: list[socket.socket] = [
            sub.extra(anyio.abc.SocketAttribute.raw_socket) for sub in sub_listeners
        ]

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._listener.extra_attributes

    async def serve(
        self,
        handler: Callable[[anyio.abc.SocketStream], Any],
        task_group: anyio.abc.TaskGroup | None = None,
    ) -> None:
        assert task_group is not None, "the server always passes its task group"
        async with anyio.create_task_group() as accepting:
            for listening in self._sockets:
                accepting.start_soon(self._accept_forever, listening, handler, task_group)

    async def _accept_forever(
        self,
        listening: socket.socket,
        handler: Callable[[anyio.abc.SocketStream], Any],
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(listening)
            try:
                transport, protocol = await loop.connect_accepted_socket(_Protocol, client)
            except OSError:
                client.close()  # the client left between accept and setup
                continue
            task_group.start_soon(handler, AsyncioSocketStream(transport, protocol))

    async def aclose(self) -> None:
        await self._listener.aclose()


_read_buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bytearray] = (
    weakref.WeakKeyDictionary()
)


def _loop_read_buffer(loop: asyncio.AbstractEventLoop) -> bytearray:
    """The one read buffer of every socket of ``loop``.

    One per loop, not per socket: the transport reads into it and :meth:`_Protocol.
    buffer_updated` copies the bytes out before the loop runs anything else, so sockets
    never see each other's bytes, and an idle connection costs no buffer at all (a buffer
    per socket was 64 KiB of the 90 KiB an idle server connection took). Per loop, not per
    process: loops in other threads read at the same time.
    """
    buffer = _read_buffers.get(loop)
    if buffer is None:
        buffer = _read_buffers[loop] = bytearray(READ_SIZE)
    return buffer


class _Protocol(asyncio.BufferedProtocol):
    """Buffers what arrives and wakes the one reader; tracks whether writing may go on.

    A buffered protocol, so the transport reads into one reused buffer (the loop's, see
    :func:`_loop_read_buffer`): a plain protocol gets a fresh 256 KiB ``bytes`` per read,
    which the allocator maps, shrinks and unmaps (three system calls per message).
    """

    # Slots, and no queue while nothing waits unread: what an idle connection costs counts
    # a thousand times over (an empty deque alone is 760 bytes).
    __slots__ = (
        "buffered",
        "chunks",
        "consumer",
        "drain_waiter",
        "eof",
        "error",
        "interrupted",
        "lost",
        "read_buffer",
        "read_waiter",
        "reading_paused",
        "transport",
        "wake_reader",
        "writing_paused",
    )

    def __init__(self) -> None:
        self.read_buffer = _loop_read_buffer(asyncio.get_running_loop())
        self.chunks: deque[bytes] | None = None  # bytes not yet received, oldest first
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.lost = False
        self.reading_paused = False
        self.writing_paused = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.consumer: Callable[[bytes], bool] | None = None
        self.wake_reader: Callable[[], None] | None = None
        self.interrupted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(0)

    def get_buffer(self, sizehint: int) -> bytearray | memoryview:
        # Never much past READ_BUFFER_LIMIT unread: at most _READ_PAST_LIMIT beyond it.
        room = READ_BUFFER_LIMIT - self.buffered
        if room >= READ_SIZE:
            return self.read_buffer
        return memoryview(self.read_buffer)[: max(room, _READ_PAST_LIMIT)]

    def buffer_updated(self, nbytes: int) -> None:
        # A copy, taken before any other socket reads into the shared buffer.
        data = bytes(memoryview(self.read_buffer)[:nbytes])
        if self.consumer is not None and not self.chunks and self.consumer(data):
            return
        if self.chunks is None:
            self.chunks = deque()
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_BUFFER_LIMIT and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return True  # keep the transport open: the server may still write a close frame

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter = self.read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif self.wake_reader is not None:
            self.wake_reader()

    def _wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioSocketStream(anyio.abc.SocketStream):
    """An anyio socket stream on an asyncio transport, with the costs described above."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False
        # Looked up once: on Python 3.11 every get_running_loop() is a getpid() system call.
        self._loop = asyncio.get_running_loop()

    @property
    def _raw_socket(self) -> socket.socket:
        sock: socket.socket = self._transport.get_extra_info("socket")
        return sock

    @property
    def consumer(self) -> Callable[[bytes], bool] | None:
        """Offered every chunk as it arrives while no other chunk waits unread.

        Called from the transport's callback: it must not block. Returning True takes the
        chunk (``receive()`` never sees it); False leaves it to ``receive()``.
        """
        return self._protocol.consumer

    @consumer.setter
    def consumer(self, consumer: Callable[[bytes], bool] | None) -> None:
        self._protocol.consumer = consumer

    @property
    def wake_reader(self) -> Callable[[], None] | None:
        """Called when ``receive()`` would have something to return and no task waits in it.

        Bytes the :attr:`consumer` left, the end of the stream, an interrupt: a reader that
        keeps no task waiting in ``receive()`` starts one then. Called from the transport's
        callbacks: it must not block.
        """
        return self._protocol.wake_reader

    @wake_reader.setter
    def wake_reader(self, wake_reader: Callable[[], None] | None) -> None:
        self._protocol.wake_reader = wake_reader

    def receive_would_wait(self) -> bool:
        """Whether ``receive()`` would wait: nothing unread, no interrupt, no end, not closed."""
        protocol = self._protocol
        return not (
            protocol.chunks
            or protocol.interrupted
            or self._closed
            or protocol.error is not None
            or protocol.eof
            or protocol.lost
        )

    def interrupt_receive(self) -> None:
        """Make a ``receive()`` waiting for bytes (or the next one) return ``b""`` once.

        How a :attr:`consumer` that took bytes hands the rest of their handling to the task
        that reads; ``receive()`` returns ``b""`` for nothing else.
        """
        self._protocol.interrupted = True
        self._protocol._wake_reader()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        while not protocol.chunks:
            if protocol.interrupted:
                protocol.interrupted = False
                return b""
            if self._closed:
                raise anyio.ClosedResourceError
            if protocol.error is not None:
                raise anyio.BrokenResourceError from protocol.error
            if protocol.eof or protocol.lost:
                raise anyio.EndOfStream
            protocol.read_waiter = self._loop.create_future()
            await protocol.read_waiter
        chunks = protocol.chunks
        assert chunks is not None  # the loop above waited for one
        chunk = chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            chunks.appendleft(rest)
        elif not chunks:
            protocol.chunks = None
        protocol.buffered -= len(chunk)
        if protocol.reading_paused and protocol.buffered <= READ_BUFFER_LIMIT // 2:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return chunk

    async def send(self, item: bytes) -> None:
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.error
        self._transport.write(item)
        while protocol.writing_paused and not protocol.lost:
            protocol.drain_waiter = self._loop.create_future()
            await protocol.drain_waiter
        if protocol.lost:
            raise anyio.BrokenResourceError from protocol.error

    async def send_eof(self) -> None:
        self._transport.write_eof()

    async def aclose(self) -> None:
        self._closed = True
        # As anyio does: close gracefully, give the loop one pass to hand the kernel what
        # is still buffered, then abort. A peer that stopped reading would otherwise keep
        # the socket open for as long as it likes; the WebSocket close handshake already
        # made sure a peer that still reads has everything that mattered.
        # With nothing buffered (nearly always: writes go straight to the kernel) there is
        # no pass to wait for.
        self._transport.close()
        self._protocol._wake_reader()
        self._protocol._wake_writer()
        if self._transport.get_write_buffer_size():
            await anyio.lowlevel.checkpoint()
            if self._transport.get_write_buffer_size():
                self._transport.abort()
