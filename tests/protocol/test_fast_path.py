"""The fast paths against wsproto: the same connection with them and without, same everything.

``panther_ws/protocol/_fast.py`` parses simple whole data frames itself and ``Connection.send``
writes whole data frames itself; wsproto does everything else. These tests feed the same
bytes, split at any points, to a connection with the fast paths and to the same connection
with them turned off (every frame through wsproto, the reference), read the events in the
same irregular bites a server does (dropping the ``events()`` iterator mid-way), answer them
the same way, and compare every event, every byte to send, the state, the close code and
reason and ``has_pending_input`` at every step: server side (masked frames) and client side
(unmasked frames), with permessage-deflate negotiated and without, with wsproto's Python
masker and with the C one.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import Frame, FrameDecoder, XorMaskerSimple

from panther_ws.protocol import (
    ClientConnection,
    Closed,
    ConnectionState,
    Message,
    Ping,
    ProtocolError,
    ServerConnection,
    _fast,
)
from panther_ws.protocol.connection import Connection
from panther_ws.protocol.events import Event
from panther_ws_testing import strategies

Wire = Callable[[bytes], object]


# -- frames, valid and not ----------------------------------------------------------------

# Mostly small lengths; sometimes at the edges of the three length encodings.
_lengths = st.one_of(
    *[st.integers(0, 140)] * 8,
    st.sampled_from([125, 126, 127, 4096, 4097, 65535]),
    st.sampled_from([65536, 70_000]),
)


def _encode(opcode: int, payload: bytes, *, fin: bool, masked: bool, rsv: int, key: bytes) -> bytes:
    frame = strategies.encode_frame(opcode, payload, fin=fin, mask=None, rsv=rsv)
    if not masked:
        return frame
    header = bytearray(frame[: len(frame) - len(payload)])
    header[1] |= 0x80
    return bytes(header) + key + bytes(XorMaskerSimple(key).process(bytearray(payload)))


@st.composite
def _payloads(draw: st.DrawFn, length: int) -> bytes:
    kind = draw(st.sampled_from(["utf-8", "bytes"] * 3 + ["invalid utf-8"]))
    if kind == "utf-8":
        text = draw(strategies.text_messages(max_size=min(length, 60)))
        return (text * (length // max(len(text), 1) + 1)).encode()[:length] if text else b""
    if kind == "invalid utf-8":
        return (b"\xe2\x82" + bytes(length))[:length]  # a cut character, maybe past the end
    return draw(st.binary(min_size=min(length, 40), max_size=min(length, 40))).ljust(length, b"x")


@st.composite
def _frame(draw: st.DrawFn, masked: bool) -> bytes:
    """A frame a peer sends: mostly whole data frames, some fragments and control frames.

    Now and then one is out of place: a new message inside a fragmented one, a continuation
    without a start, a text frame of invalid UTF-8.
    """
    key = draw(st.binary(min_size=4, max_size=4))
    kind = draw(st.sampled_from(["data"] * 8 + ["control", "message"]))
    if kind == "data":
        length = draw(_lengths)
        return _encode(
            draw(st.sampled_from([1, 2] * 6 + [0])),
            draw(_payloads(length)),
            fin=draw(st.sampled_from([True, True, True, False])),
            masked=masked,
            rsv=0,
            key=key,
        )
    if kind == "control":
        opcode = draw(st.sampled_from([9, 10]))
        return _encode(
            opcode, draw(st.binary(max_size=125)), fin=True, masked=masked, rsv=0, key=key
        )
    if masked:  # a whole valid message, maybe fragmented with pings between
        return draw(strategies.frames(max_message_size=200))
    return _encode(2, draw(st.binary(max_size=200)), fin=True, masked=False, rsv=0, key=key)


@st.composite
def _last_frame(draw: st.DrawFn, masked: bool) -> bytes:
    """Something after which a connection is closed or failed, or only looks like a frame."""
    key = draw(st.binary(min_size=4, max_size=4))
    kind = draw(st.sampled_from(["odd data", "any", "close", "long length", "raw", "message"]))
    if kind == "odd data":  # data frames the fast path must leave to wsproto
        length = draw(_lengths)
        return _encode(
            draw(st.sampled_from([1, 2, 0])),
            draw(_payloads(length)),
            fin=draw(st.booleans()),
            masked=draw(st.booleans()),
            rsv=draw(st.integers(0, 7)),
            key=key,
        )
    if kind == "any":
        return _encode(
            draw(st.integers(0, 15)),
            draw(st.binary(max_size=130)),
            fin=draw(st.booleans()),
            masked=draw(st.booleans()),
            rsv=draw(st.integers(0, 7)),
            key=key,
        )
    if kind == "close":
        code = draw(strategies.close_codes() | strategies.invalid_close_codes())
        reason = draw(strategies.close_reasons(max_bytes=20).map(str.encode) | st.just(b"\xff"))
        payload = draw(st.sampled_from([b"", b"\x03"]) | st.just(struct.pack("!H", code) + reason))
        return _encode(8, payload, fin=True, masked=masked, rsv=0, key=key)
    if kind == "long length":  # lengths not in their shortest encoding, or with the MSB set
        first = draw(st.sampled_from([0x81, 0x82]))
        length = draw(st.sampled_from([0, 5, 125, 126, 65535]))
        if draw(st.booleans()):
            extended = struct.pack("!BH", 126, length)
        else:
            extended = struct.pack("!BQ", 127, length | (draw(st.booleans()) << 63))
        second = extended[0] | (0x80 if masked else 0)
        return bytes([first, second]) + extended[1:] + (key if masked else b"") + bytes(length)
    if kind == "raw":
        return draw(st.binary(max_size=24))
    if masked:
        return draw(strategies.frames(invalid=True, max_message_size=200))
    return _encode(1, b"\xff", fin=True, masked=False, rsv=0, key=key)


def _chunks(pieces: list[bytes], joins: list[bool], cuts: list[int]) -> list[bytes]:
    """The bytes of ``pieces`` as a peer's reads: whole pieces or several, cut anywhere."""
    groups: list[bytes] = []
    for index, piece in enumerate(pieces):
        if groups and index < len(joins) and joins[index]:
            groups[-1] += piece
        else:
            groups.append(piece)
    chunks: list[bytes] = []
    for index, group in enumerate(groups):
        cut = cuts[index] % (len(group) + 1) if index < len(cuts) else 0
        chunks += [group[:cut], group[cut:]] if 0 < cut < len(group) else [group]
    return chunks


# -- the two connections, driven in step -------------------------------------------------


def _observe(connection: Connection) -> tuple[Any, ...]:
    return (
        connection.state,
        connection.close_code,
        connection.close_reason,
        connection.has_pending_input,
        connection.wants_to_write,
    )


def _both(call: Callable[[Connection], object], fast: Connection, slow: Connection) -> None:
    outcomes = []
    for connection in (fast, slow):
        try:
            call(connection)
            outcomes.append("ok")
        except ProtocolError as error:
            outcomes.append(f"ProtocolError: {error}")
    assert outcomes[0] == outcomes[1]


def _answer(connection: Connection, event: Event, action: str) -> None:
    if connection.state is not ConnectionState.OPEN:
        return
    if action == "echo" and isinstance(event, Message):
        connection.send(event.data)
    elif action == "send small":
        connection.send("ok")
    elif action == "send fragmented":
        connection.send(b"fragmented" * 3, fragment_size=7)
    elif action == "ping":
        connection.ping(b"p")
    elif action == "close":
        connection.close(1000, "bye")


def _drain(data: st.DataObject, fast: Connection, slow: Connection, wire: Wire) -> None:
    """Read both connections' events in step, in bites, answering each the same way."""
    while True:
        fast_events, slow_events = fast.events(), slow.events()
        # A server drops the iterator after a message when it has to wait for its app.
        for _ in range(data.draw(st.integers(1, 4), label="events before dropping the iterator")):
            fast_event, slow_event = next(fast_events, None), next(slow_events, None)
            assert fast_event == slow_event
            assert type(fast_event) is type(slow_event)
            assert _observe(fast) == _observe(slow)
            if fast_event is None or slow_event is None:
                return
            action = data.draw(
                st.sampled_from(["none", "none", "echo", "send small", "send fragmented", "ping"])
                | st.just("close"),
                label="answer",
            )
            _answer(fast, fast_event, action)
            _answer(slow, slow_event, action)
            assert _observe(fast) == _observe(slow)
            assert wire(fast.data_to_send()) == wire(slow.data_to_send())


def _receive(data: bytes | None, connection: Connection) -> None:
    connection.receive_data(data)


def _feed_in_step(
    data: st.DataObject, fast: Connection, slow: Connection, chunks: list[bytes], wire: Wire
) -> None:
    for chunk in chunks:
        _both(functools.partial(_receive, chunk), fast, slow)
        assert wire(fast.data_to_send()) == wire(slow.data_to_send())
        _drain(data, fast, slow, wire)
    if data.draw(st.booleans(), label="end of stream"):
        _both(functools.partial(_receive, None), fast, slow)
        _drain(data, fast, slow, wire)
    assert _observe(fast) == _observe(slow)
    assert fast._fragments == slow._fragments


def _open_servers(
    deflate: bool, limit: int
) -> tuple[ServerConnection, ServerConnection, ClientConnection]:
    peer = ClientConnection("example.com", "/", permessage_deflate=deflate)
    request = peer.data_to_send()
    servers = []
    for fast_path in (True, False):
        server = ServerConnection(max_message_size=limit, permessage_deflate=deflate)
        server._fast_path = fast_path
        server.receive_data(request)
        list(server.events())
        server.accept()
        response = server.data_to_send()
        servers.append(server)
    peer.receive_data(response)
    list(peer.events())
    return servers[0], servers[1], peer


def _open_clients(
    deflate: bool, limit: int
) -> tuple[ClientConnection, ClientConnection, ServerConnection]:
    clients, peers = [], []
    for fast_path in (True, False):
        client = ClientConnection(
            "example.com", "/", permessage_deflate=deflate, max_message_size=limit
        )
        client._fast_path = fast_path
        peer = ServerConnection(permessage_deflate=deflate)
        peer.receive_data(client.data_to_send())
        list(peer.events())
        peer.accept()
        client.receive_data(peer.data_to_send())
        list(client.events())  # Accepted: its headers differ, as each key does
        clients.append(client)
        peers.append(peer)
    return clients[0], clients[1], peers[0]


def _unmasked(data: bytes) -> list[tuple[int, bytes]]:
    """A client's frames without their random masks: (first header byte, payload)."""
    frames, position = [], 0
    while position < len(data):
        first, second = data[position], data[position + 1] & 0x7F
        position += 2
        if second == 126:
            (second,) = struct.unpack_from("!H", data, position)
            position += 2
        elif second == 127:
            (second,) = struct.unpack_from("!Q", data, position)
            position += 8
        key, position = data[position : position + 4], position + 4
        payload = bytes(XorMaskerSimple(key).process(bytearray(data[position : position + second])))
        frames.append((first, payload))
        position += second
    return frames


def _identity(data: bytes) -> object:
    return data


_LIMITS = st.sampled_from([1, 64, 200, 4096, 1 << 20, 1 << 20])
_FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(
    frames=st.lists(_frame(masked=True), max_size=10),
    last=st.lists(_last_frame(masked=True), max_size=1),
    messages=st.lists(strategies.messages(max_size=300), max_size=3),
    joins=st.lists(st.booleans(), max_size=12),
    cuts=st.lists(st.integers(0, 1 << 20) | st.integers(0, 12), max_size=12),
    deflate=st.booleans(),
    limit=_LIMITS,
    data=st.data(),
)
def test_a_server_parses_any_bytes_as_wsproto_does(
    masking: str,
    frames: list[bytes],
    last: list[bytes],
    messages: list[str | bytes],
    joins: list[bool],
    cuts: list[int],
    deflate: bool,
    limit: int,
    data: st.DataObject,
) -> None:
    fast, slow, peer = _open_servers(deflate, limit)
    for message in messages:  # real frames of the negotiated kind: compressed, with deflate
        peer.send(message)
    chunks = _chunks([peer.data_to_send(), *frames, *last], joins, cuts)
    _feed_in_step(data, fast, slow, chunks, _identity)


@_FUZZ
@given(
    frames=st.lists(_frame(masked=False), max_size=10),
    last=st.lists(_last_frame(masked=False), max_size=1),
    messages=st.lists(strategies.messages(max_size=300), max_size=3),
    joins=st.lists(st.booleans(), max_size=12),
    cuts=st.lists(st.integers(0, 1 << 20) | st.integers(0, 12), max_size=12),
    deflate=st.booleans(),
    limit=_LIMITS,
    data=st.data(),
)
def test_a_client_parses_any_bytes_as_wsproto_does(
    masking: str,
    frames: list[bytes],
    last: list[bytes],
    messages: list[str | bytes],
    joins: list[bool],
    cuts: list[int],
    deflate: bool,
    limit: int,
    data: st.DataObject,
) -> None:
    fast, slow, peer = _open_clients(deflate, limit)
    for message in messages:
        peer.send(message)
    chunks = _chunks([peer.data_to_send(), *frames, *last], joins, cuts)
    _feed_in_step(data, fast, slow, chunks, _unmasked)


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(strategies.messages(max_size=70_000), max_size=4), deflate=st.booleans())
def test_sending_writes_the_frames_wsproto_writes(
    messages: list[str | bytes], deflate: bool
) -> None:
    fast, slow, _ = _open_servers(deflate, 1 << 20)
    fast_client, slow_client, _ = _open_clients(deflate, 1 << 20)
    for message in messages:
        fast.send(message)
        slow.send(message)
        fast_client.send(message)
        slow_client.send(message)
    assert fast.data_to_send() == slow.data_to_send()
    assert _unmasked(fast_client.data_to_send()) == _unmasked(slow_client.data_to_send())


# -- the fast path is the one taken ------------------------------------------------------


def _refuse_wsproto_parsing(connection: Connection) -> list[str]:
    """Record each time wsproto's frame parser runs on ``connection``."""
    assert connection._frames is not None
    decoder: FrameDecoder = connection._frames._frame_decoder
    calls: list[str] = []
    parse = decoder.process_buffer

    def recording() -> Frame | None:
        calls.append("wsproto")
        return parse()

    decoder.process_buffer = recording  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("side", ["server", "client"])
def test_whole_small_data_frames_skip_wsprotos_parser(masking: str, side: str) -> None:
    server = side == "server"
    connection: Connection = (_open_servers if server else _open_clients)(False, 1 << 20)[0]

    def frame(opcode: int, payload: bytes) -> bytes:
        return _encode(opcode, payload, fin=True, masked=server, rsv=0, key=b"abcd")

    calls = _refuse_wsproto_parsing(connection)
    for payload in (b"", b"x" * 125, b"y" * 126, b"z" * 70_000):
        connection.receive_data(frame(2, payload) + frame(1, "héllo".encode()))
        assert list(connection.events()) == [Message(payload), Message("héllo")]
    assert calls == []
    connection.receive_data(frame(9, b"ping"))  # anything else is wsproto's
    assert list(connection.events()) == [Ping(b"ping")]
    assert calls
    connection.receive_data(frame(2, b"again"))
    assert list(connection.events()) == [Message(b"again")]


def test_the_fast_path_leaves_a_frame_wsproto_has_begun() -> None:
    server = _open_servers(False, 1 << 20)[0]
    whole = _encode(2, b"0123456789", fin=True, masked=True, rsv=0, key=b"abcd")
    server.receive_data(whole[:9])  # wsproto reads the header and the first 3 bytes
    assert list(server.events()) == []
    assert server._frames is not None
    assert server._frames._frame_decoder.header is not None
    assert not _fast.take_messages(server._frames, server._events, server.max_message_size)
    server.receive_data(whole[9:] + whole)
    assert list(server.events()) == [Message(b"0123456789"), Message(b"0123456789")]


def test_messages_parsed_ahead_count_as_pending_input() -> None:
    server = _open_servers(False, 1 << 20)[0]
    frame = _encode(2, b"m", fin=True, masked=True, rsv=0, key=b"abcd")
    server.receive_data(frame * 3)
    events = server.events()
    assert next(events) == Message(b"m")
    assert server.has_pending_input  # two more, though their bytes are parsed already
    assert list(events) == [Message(b"m")] * 2
    assert not server.has_pending_input


def _masked(first: int, second: int, rest: bytes = b"") -> bytes:
    return bytes([first, second | 0x80]) + rest


@pytest.mark.parametrize(
    ("frame", "limit"),
    [
        (_masked(0x82, 126, b"\x00\x05abcd" + bytes(5)), 1 << 20),  # 16-bit length for 5
        (_masked(0x82, 127, bytes(7) + b"\x05abcd" + bytes(5)), 1 << 20),  # 64-bit for 5
        (_masked(0x82, 127, b"\x00" * 6 + b"\xff\xff" + b"abcd" + bytes(65535)), 1 << 20),
        (_masked(0x82, 127, b"\x80" + bytes(6) + b"\x05abcd" + bytes(5)), 1 << 20),  # MSB set
        (b"\x82\x02hi" + bytes(8), 1 << 20),  # unmasked, to a server
        (_masked(0xC2, 5, b"abcd" + bytes(5)), 1 << 20),  # RSV1 without an extension
        (_masked(0x92, 5, b"abcd" + bytes(5)), 1 << 20),  # RSV3
        (_masked(0x80, 5, b"abcd" + bytes(5)), 1 << 20),  # a continuation without a start
        (_masked(0x83, 5, b"abcd" + bytes(5)), 1 << 20),  # a reserved opcode
        (_masked(0x81, 2, b"\x00\x00\x00\x00\xc3\x28"), 1 << 20),  # invalid UTF-8
        (_masked(0x81, 3, b"\x00\x00\x00\x00\xe2\x82\xac"), 1),  # 3 bytes, 1 character
        (_masked(0x81, 4, b"\x00\x00\x00\x00" + "€x".encode()), 1),  # 2 characters
        (_masked(0x82, 2, b"\x00\x00\x00\x00xy"), 1),  # over the limit
        (_masked(0x82, 1, b"\x00\x00\x00\x00x"), 1),  # at the limit
    ],
)
def test_frames_the_fast_path_leaves_end_as_in_wsproto(frame: bytes, limit: int) -> None:
    fast, slow, _ = _open_servers(False, limit)
    valid = _encode(2, b".", fin=True, masked=True, rsv=0, key=b"abcd")
    results = []
    for connection in (fast, slow):
        connection.receive_data(valid + frame)
        results.append((list(connection.events()), connection.data_to_send(), _observe(connection)))
    assert results[0] == results[1]
    assert results[0][0][0] == Message(b".")


def test_a_new_message_inside_a_fragmented_one_fails_as_in_wsproto() -> None:
    server = _open_servers(False, 1 << 20)[0]
    server.receive_data(_encode(1, b"start", fin=False, masked=True, rsv=0, key=b"abcd"))
    assert list(server.events()) == []
    server.receive_data(_encode(2, b"new", fin=True, masked=True, rsv=0, key=b"abcd"))
    (closed,) = server.events()
    assert closed == Closed(1002, "expected CONTINUATION, got <Opcode.BINARY: 2>")


def test_after_a_close_frame_nothing_more_is_parsed() -> None:
    server = _open_servers(False, 1 << 20)[0]
    close = _encode(8, struct.pack("!H", 1000), fin=True, masked=True, rsv=0, key=b"abcd")
    message = _encode(2, b"late", fin=True, masked=True, rsv=0, key=b"abcd")
    server.receive_data(close + message)
    assert list(server.events()) == [Closed(1000, "")]
    assert list(server.events()) == []


def test_events_are_still_frozen_dataclasses() -> None:
    message = Message(b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.data = b"y"  # type: ignore[misc]
    assert dataclasses.replace(message, data="z") == Message("z")
    assert [field.name for field in dataclasses.fields(Closed)] == ["code", "reason"]
    assert hash(Closed(1000)) == hash(Closed(1000, ""))
    assert repr(Ping(b"p")) == "Ping(payload=b'p')"
    match Closed(1001, "away"):
        case Closed(code, reason):
            assert (code, reason) == (1001, "away")
