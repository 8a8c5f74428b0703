"""Our frame serializer and C masking against wsproto, whose code they stand in for.

Every test here runs twice: with the C masker our connections use when ``websockets`` is
installed, and with wsproto's own Python masker. The peer is bare wsproto, so a framing or
masking mistake on our side cannot cancel out against the same mistake on the other.
"""

from __future__ import annotations

import random

import pytest
import wsproto
from hypothesis import given
from hypothesis import strategies as st
from wsproto import frame_protocol
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import FrameDecoder, FrameProtocol

from panther_ws.protocol import (
    ClientConnection,
    Closed,
    Message,
    Ping,
    Pong,
    ServerConnection,
    _framing,
)
from panther_ws_testing import strategies
from tests.protocol.helpers import C_MASK, open_pair, pump

# Every test here runs once per masking path (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("masking")


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)] or [b""]


def _bare_server_for(client: ClientConnection, deflate: bool) -> wsproto.WSConnection:
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.data_to_send())
    assert isinstance(next(server.events()), Request)
    extensions: list[Extension] = [PerMessageDeflate()] if deflate else []
    client.receive_data(server.send(AcceptConnection(extensions=extensions)))
    list(client.events())
    return server


def _our_server_and_bare_client(deflate: bool) -> tuple[ServerConnection, wsproto.WSConnection]:
    server = ServerConnection(permessage_deflate=deflate)
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if deflate else []
    server.receive_data(client.send(Request(host="ex.com", target="/", extensions=extensions)))
    list(server.events())
    server.accept()
    client.receive_data(server.data_to_send())
    list(client.events())
    return server, client


# Sizes across the three length encodings (7-bit, 16-bit, 64-bit) and not multiples of 4.
payloads = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.integers(0, 70_000).map(lambda size: random.Random(size).randbytes(size)),
)


@given(payload=payloads, parts=st.one_of(st.none(), st.integers(1, 20)), deflate=st.booleans())
def test_our_client_frames_parse_in_bare_wsproto(
    payload: str | bytes, parts: int | None, deflate: bool
) -> None:
    fragment = None if parts is None else max(1, -(-len(payload) // parts))
    client = ClientConnection("example.com", "/", permessage_deflate=deflate)
    server = _bare_server_for(client, deflate)
    client.send(payload, fragment_size=fragment)
    server.receive_data(client.data_to_send())
    received = list(server.events())
    assert all(isinstance(part, TextMessage | BytesMessage) for part in received)
    assert type(payload)().join(part.data for part in received) == payload  # type: ignore[attr-defined]


@given(payload=payloads, read_size=st.integers(1, 70_000), deflate=st.booleans())
def test_our_server_unmasks_frames_split_over_any_reads(
    payload: str | bytes, read_size: int, deflate: bool
) -> None:
    server, client = _our_server_and_bare_client(deflate)
    message = TextMessage(payload) if isinstance(payload, str) else BytesMessage(payload)
    # A payload split mid-key: the key must continue from the right byte in the next read.
    for chunk in _chunks(client.send(message), read_size):
        server.receive_data(chunk)
    assert list(server.events()) == [Message(payload)]


@given(payload=payloads, read_size=st.integers(1, 70_000), deflate=st.booleans())
def test_our_server_frames_parse_in_bare_wsproto(
    payload: str | bytes, read_size: int, deflate: bool
) -> None:
    server, client = _our_server_and_bare_client(deflate)
    server.send(payload)
    for chunk in _chunks(server.data_to_send(), read_size):
        client.receive_data(chunk)
    parts = list(client.events())
    assert type(payload)().join(part.data for part in parts) == payload  # type: ignore[attr-defined]


def test_every_client_frame_gets_a_fresh_key() -> None:
    client, _ = open_pair()
    client.send(b"same payload")
    client.send(b"same payload")
    stream = client.data_to_send()
    first, second = stream[: len(stream) // 2], stream[len(stream) // 2 :]
    assert first[1] & second[1] & 0x80  # the mask bit
    assert first[2:6] != second[2:6]
    assert b"same payload" not in stream


def test_control_frames_and_the_closing_handshake_survive() -> None:
    client, server = open_pair()
    client.ping(b"p" * 125)
    client.close(4000, "r" * 123)
    assert pump(client, server) == [Ping(b"p" * 125), Closed(4000, "r" * 123)]
    assert pump(server, client) == [Pong(b"p" * 125), Closed(4000, "r" * 123)]


def test_deflate_compresses_and_round_trips_between_our_ends() -> None:
    client, server = open_pair(deflate=True)
    client.send("x" * 70_000)
    frame = client.data_to_send()
    assert frame[0] & 0x40  # RSV1: compressed
    assert len(frame) < 1_000
    server.receive_data(frame)
    assert list(server.events()) == [Message("x" * 70_000)]
    server.send(b"y" * 70_000)
    assert pump(server, client) == [Message(b"y" * 70_000)]


def test_wsproto_itself_is_left_alone(masking: str) -> None:
    client, server = open_pair()
    assert client._frames is not None
    assert server._frames is not None
    assert type(client._frames) is not FrameProtocol
    assert (type(server._frames._frame_decoder) is FrameDecoder) is (masking == "python")
    assert frame_protocol.XorMaskerSimple.__module__ == "wsproto.frame_protocol"
    bare = FrameProtocol(client=True, extensions=[])
    assert type(bare) is FrameProtocol
    assert type(bare._frame_decoder) is FrameDecoder


@given(chunks=st.lists(st.one_of(strategies.frames(), strategies.frames(invalid=True)), max_size=6))
def test_any_client_frames_give_the_same_events_with_either_masker(chunks: list[bytes]) -> None:
    results = []
    for mask in (C_MASK, None):
        _framing.apply_mask = mask
        _, server = open_pair()
        server.receive_data(b"".join(chunks))
        results.append((list(server.events()), server.data_to_send()))
    assert results[0] == results[1]
