"""What the server and the client both do with a live core and its stream: write and ping."""

from __future__ import annotations

import anyio
import anyio.abc

from panther_ws.protocol import Connection, ConnectionState

_STREAM_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class OrderedWriter:
    """Writes what a core queued to its stream, from any number of tasks, in order.

    One task writes at a time and, before it stops, also writes what others queued
    meanwhile: bytes leave in the order the core produced them, and a task that finds the
    socket busy returns once the writer has written its bytes too (the backpressure an
    app's ``send()`` relies on). No lock: the uncontended path, nearly every send, costs no
    more than the write itself.
    """

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


class Keepalive:
    """Pings the peer every ``interval`` and gives up on it when a pong is ``timeout`` late."""

    def __init__(self, core: Connection, writer: OrderedWriter) -> None:
        self._core = core
        self._writer = writer
        self._pong = anyio.Event()

    def pong_received(self) -> None:
        """Call for every ``Pong`` event the core reports."""
        self._pong.set()

    async def run(self, interval: float, timeout: float) -> bool:
        """Ping until the connection leaves OPEN; True if the peer stopped answering.

        Then a 1011 close frame has been queued and, if the peer still reads, written.
        """
        while self._core.state is ConnectionState.OPEN:
            await anyio.sleep(interval)
            if self._core.state is not ConnectionState.OPEN:
                return False
            self._pong = anyio.Event()
            self._core.ping(b"keepalive")
            await self._flush_quietly()
            with anyio.move_on_after(timeout):
                await self._pong.wait()
            if not self._pong.is_set() and self._core.state is ConnectionState.OPEN:
                self._core.close(1011, "keepalive ping timeout")
                await self._flush_quietly()
                return True
        return False

    async def _flush_quietly(self) -> None:
        try:
            await self._writer.flush()
        except anyio.BrokenResourceError:
            pass  # the reader sees the end of the stream and reports the close
