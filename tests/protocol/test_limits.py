"""Memory a hostile peer controls: compression bombs, and what a failed connection keeps."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
import zlib
from collections.abc import Callable, Iterator

import pytest
import wsproto
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from panther_ws.protocol import (
    ClientConnection,
    Closed,
    Message,
    Ping,
    ServerConnection,
)
from tests.protocol.helpers import frame, open_pair, pump

LIMIT = 1 << 20
RSV1 = 4  # encode_frame's rsv argument: the compressed bit


def deflate(data: bytes, compressor: zlib._Compress | None = None) -> bytes:
    """``data`` as one whole permessage-deflate message payload (RFC 7692 7.2.1)."""
    compressor = compressor or zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def bomb_frame(inflated_size: int, *, mask: bool) -> bytes:
    return frame(0x2, deflate(bytes(inflated_size)), rsv=RSV1, mask=mask)


def peak_memory_of(run: Callable[[], object]) -> int:
    """Bytes allocated at the peak of ``run()``, above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def no_gc() -> Iterator[None]:
    """What must be freed must be freed by reference counting, not by a GC pass."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _feed(connection: ServerConnection | ClientConnection, data: bytes) -> list[object]:
    connection.receive_data(data)
    return list(connection.events())


@pytest.mark.parametrize("side", ["server", "client"])
def test_a_compression_bomb_fails_1009_as_it_inflates(side: str) -> None:
    client, server = open_pair(max_message_size=LIMIT, deflate=True)
    target, peer = (server, client) if side == "server" else (client, server)
    bomb = bomb_frame(64 * LIMIT, mask=side == "server")  # ~64 KB inflating to 64 MiB
    events: list[object] = []
    peak = peak_memory_of(lambda: events.extend(_feed(target, bomb)))
    reason = "compressed message exceeds the limit of 1048576 bytes once inflated"
    assert events == [Closed(1009, reason)]
    assert pump(target, peer) == [Closed(1009, reason)]  # the close frame was queued
    # About twice the limit (zlib joins its output blocks) and a few copies of the ~64 KB
    # read; wsproto alone inflated all 64 MiB first.
    assert peak < 3 * LIMIT


def test_a_bomb_spread_over_many_small_frames_fails_at_the_limit() -> None:
    _, server = open_pair(max_message_size=LIMIT, deflate=True)
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    chunk = bytes(LIMIT // 4)
    parts = [compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH) for _ in range(8)]
    frames = [frame(0x2, parts[0], fin=False, rsv=RSV1)]
    frames += [frame(0x0, part, fin=False) for part in parts[1:]]
    events = _feed(server, b"".join(frames))
    assert events == [Closed(1009, server.close_reason or "")]


def test_a_compressed_message_at_the_limit_passes_and_one_byte_more_fails() -> None:
    _, server = open_pair(max_message_size=LIMIT, deflate=True)
    assert _feed(server, bomb_frame(LIMIT, mask=True)) == [Message(bytes(LIMIT))]
    (closed,) = _feed(server, bomb_frame(LIMIT + 1, mask=True))
    assert isinstance(closed, Closed)
    assert closed.code == 1009


def test_the_limit_is_per_message_with_context_takeover() -> None:
    client, server = open_pair(max_message_size=LIMIT, deflate=True)
    for _ in range(4):  # 3 MiB over one connection, 3/4 of the limit at a time
        client.send(bytes(3 * LIMIT // 4))
        assert _feed(server, client.data_to_send()) == [Message(bytes(3 * LIMIT // 4))]


def test_a_peer_without_context_takeover_is_inflated_with_a_fresh_window() -> None:
    server = ServerConnection(max_message_size=LIMIT)
    peer = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    extension = PerMessageDeflate(client_no_context_takeover=True)
    server.receive_data(peer.send(Request(host="ex.com", target="/", extensions=[extension])))
    list(server.events())
    server.accept()
    peer.receive_data(server.data_to_send())
    list(peer.events())
    stream = b"".join(peer.send(TextMessage("same words " * 50)) for _ in range(3))
    assert _feed(server, stream) == [Message("same words " * 50)] * 3
    server.send(b"back")
    peer.receive_data(server.data_to_send())
    assert [event.data for event in peer.events() if isinstance(event, BytesMessage)] == [b"back"]


def test_a_ping_between_compressed_fragments_leaves_the_message_intact() -> None:
    # wsproto's extension let the ping reset the message's state: the rest arrived compressed.
    _, server = open_pair(deflate=True)
    payload = deflate(b"hello world " * 10)
    stream = (
        frame(0x1, payload[:10], fin=False, rsv=RSV1) + frame(0x9, b"p") + frame(0x0, payload[10:])
    )
    assert _feed(server, stream) == [Ping(b"p"), Message("hello world " * 10)]


def test_invalid_compressed_data_is_1007() -> None:
    _, server = open_pair(deflate=True)
    (closed,) = _feed(server, frame(0x2, b"\xff\xff\xff\xff", rsv=RSV1))
    assert isinstance(closed, Closed)
    assert closed.code == 1007
    assert "invalid compressed data" in closed.reason


def _open_with_bare_server(max_message_size: int) -> tuple[ClientConnection, wsproto.WSConnection]:
    client = ClientConnection("ex.com", "/", max_message_size=max_message_size)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.data_to_send())
    list(server.events())
    client.receive_data(server.send(AcceptConnection(extensions=[PerMessageDeflate()])))
    list(client.events())
    return client, server


def test_a_failed_connection_is_freed_without_a_gc(no_gc: None) -> None:
    client, server = _open_with_bare_server(LIMIT)
    assert client._frames is not None
    frames = weakref.ref(client._frames)
    (closed,) = _feed(client, server.send(BytesMessage(bytes(2 * LIMIT))))
    assert isinstance(closed, Closed)
    assert closed.code == 1009
    del client
    # wsproto's frame protocol is in a cycle with its own suspended generator.
    assert frames() is None


def test_a_failed_connection_keeps_no_payload_while_it_is_still_held() -> None:
    client, _ = open_pair(max_message_size=LIMIT)
    too_big = frame(0x2, bytes(4 * LIMIT), mask=False)  # parsed as one frame, then 1009
    tracemalloc.start()
    try:
        client.receive_data(too_big)
        assert [type(event) for event in client.events()] == [Closed]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert client.close_code == 1009
    assert held < LIMIT // 4
