"""Properties of the core over generated input (Hypothesis)."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.utilities import generate_accept_token

from panther_ws.protocol import (
    ClientConnection,
    ConnectionState,
    Message,
    ProtocolError,
    Request,
    ServerConnection,
)
from panther_ws_testing import strategies
from tests.protocol.helpers import open_pair, pump

LIMIT = 4096


@given(
    messages=st.lists(strategies.messages(max_size=3000), max_size=8), fragment=st.integers(1, 500)
)
def test_client_messages_arrive_whole_and_come_back(
    messages: list[str | bytes], fragment: int
) -> None:
    client, server = open_pair(deflate=True)
    for message in messages:
        client.send(message, fragment_size=fragment)
    received = pump(client, server)
    assert received == [Message(m) for m in messages]
    for message in messages:
        server.send(message)
    assert pump(server, client) == [Message(m) for m in messages]


def _feed(connection: ServerConnection | ClientConnection, chunks: list[bytes]) -> None:
    for chunk in chunks:
        if connection.state is ConnectionState.CLOSED:
            return
        try:
            connection.receive_data(chunk)
        except ProtocolError:
            return
        list(connection.events())
        connection.data_to_send()
        assert connection._fragments_size <= LIMIT


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=200), max_size=10))
def test_any_bytes_before_the_handshake_raise_only_protocol_error(chunks: list[bytes]) -> None:
    _feed(ServerConnection(max_message_size=LIMIT), chunks)
    _feed(ClientConnection("example.com", "/", max_message_size=LIMIT), chunks)


@settings(max_examples=300)
@given(
    chunks=st.lists(
        st.one_of(st.binary(max_size=300), strategies.frames(invalid=True), strategies.frames()),
        max_size=10,
    ),
    deflate=st.booleans(),
)
def test_any_bytes_after_the_handshake_raise_only_protocol_error(
    chunks: list[bytes], deflate: bool
) -> None:
    client, server = open_pair(max_message_size=LIMIT, deflate=deflate)
    _feed(server, chunks)
    _feed(client, chunks)


# -- the handshake, both sides ----------------------------------------------------------------

_DEFLATE_PARAMETERS = [
    "client_max_window_bits",
    "server_max_window_bits",
    "client_no_context_takeover",
    "server_no_context_takeover",
    "mystery",
]
# Mostly what h11 lets through (no control characters), so wsproto's own parsing is reached.
_ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_any_text = st.one_of(
    _ascii_text, _ascii_text, st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=12)
)
_header_bytes = st.one_of(
    _any_text.map(str.encode), _any_text.map(str.encode), st.binary(max_size=30)
)
_header_names = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10).map(str.encode),
    st.binary(min_size=1, max_size=10),
)


@st.composite
def _deflate_offers(draw: st.DrawFn) -> str:
    """One permessage-deflate offer or answer: ``permessage-deflate; server_max_window_bits=9``."""
    parameters = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_DEFLATE_PARAMETERS),
                st.one_of(
                    st.none(),
                    st.integers(-1, 20).map(str),
                    st.sampled_from(["", "abc", " 9 ", "1e1", '"10"']),
                    _any_text,
                ),
            ),
            max_size=4,
        )
    )
    return "permessage-deflate" + "".join(
        f"; {name}" + ("" if value is None else f"={value}") for name, value in parameters
    )


def _extension_headers() -> st.SearchStrategy[bytes]:
    """A whole ``Sec-WebSocket-Extensions`` value: offers, junk, maybe not ASCII."""
    items = st.lists(st.one_of(_deflate_offers(), _deflate_offers(), _any_text), max_size=3)
    return st.one_of(items.map(lambda offers: ", ".join(offers).encode()), st.binary(max_size=30))


def _subprotocol_headers() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.lists(_any_text, max_size=3).map(lambda names: ", ".join(names).encode()),
        st.binary(max_size=20),
    )


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


Parts = list[tuple[bytes, bytes, list[bytes | None]]]


def _head(draw: st.DrawFn, parts: Parts, negotiation: list[tuple[bytes, bytes | None]]) -> bytes:
    """A head of ``parts`` (first the start line) with at most one of them broken."""
    broken = draw(st.one_of(st.none(), st.integers(0, len(parts) - 1)))
    lines = []
    for index, (name, valid, alternatives) in enumerate(parts):
        value = draw(st.sampled_from(alternatives)) if index == broken else valid
        if value is not None:
            lines.append(name + b": " + value if name else value)
    lines += [name + b": " + value for name, value in negotiation if value is not None]
    extra = draw(st.none() | st.tuples(_header_names, _header_bytes))
    if extra is not None:
        lines.append(extra[0] + b": " + extra[1])
    return b"\r\n".join(lines) + draw(st.sampled_from([b"\r\n\r\n", b"\n\n"]))


@st.composite
def _request_heads(draw: st.DrawFn) -> bytes:
    """Upgrade requests, mostly valid but for random extension and subprotocol offers."""
    parts: Parts = [
        (
            b"",
            b"GET /ws HTTP/1.1",
            [b"GET /ws HTTP/1.0", b"POST / HTTP/1.1", b"GET /\xff HTTP/1.1"],
        ),
        (b"Host", b"example.com", [None, b"xn--\xff", b""]),
        (b"Upgrade", b"websocket", [None, b"h2c"]),
        (b"Connection", b"Upgrade", [None, b"\xff"]),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==", [None, b"short"]),
        (b"Sec-WebSocket-Version", b"13", [None, b"8"]),
    ]
    negotiation = [
        (b"Sec-WebSocket-Extensions", draw(_extension_headers() | st.none())),
        (b"Sec-WebSocket-Protocol", draw(_subprotocol_headers() | st.none())),
    ]
    return _head(draw, parts, negotiation)


@settings(max_examples=400)
@given(
    head=_request_heads(),
    after=st.lists(st.one_of(st.binary(max_size=100), strategies.frames()), max_size=4),
    cuts=st.lists(st.integers(0, 1000), max_size=4),
    pick=st.integers(0, 3),
)
def test_any_upgrade_request_raises_only_protocol_error(
    head: bytes, after: list[bytes], cuts: list[int], pick: int
) -> None:
    server = ServerConnection(max_message_size=LIMIT)
    chunks = _split(head + b"".join(after), cuts)
    for index, chunk in enumerate(chunks):
        try:
            server.receive_data(chunk)
        except ProtocolError:
            assert server.state is ConnectionState.CLOSED
            return
        for event in server.events():
            assert isinstance(event, Request)
            offered = (*event.subprotocols, None)
            server.accept(offered[pick % len(offered)])  # a valid request can be accepted
            list(server.events())  # frames read with the head
            _feed(server, chunks[index + 1 :])
            return


@settings(max_examples=300)
@given(offers=_extension_headers(), subprotocols=_subprotocol_headers())
def test_any_negotiation_offer_is_answered_or_refused_with_protocol_error(
    offers: bytes, subprotocols: bytes
) -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: " + offers + b"\r\n"
        b"Sec-WebSocket-Protocol: " + subprotocols + b"\r\n\r\n"
    )
    server = ServerConnection(max_message_size=LIMIT)
    try:
        server.receive_data(head)
    except ProtocolError:
        assert server.data_to_send().startswith(b"HTTP/1.1 400 ")
        return
    (request,) = server.events()
    assert isinstance(request, Request)
    server.accept(request.subprotocols[0] if request.subprotocols else None)
    assert server.data_to_send().startswith(b"HTTP/1.1 101 ")


@st.composite
def _upgrade_responses(draw: st.DrawFn, key: bytes) -> bytes:
    """The server's answer to ``key``: mostly a valid 101, with random negotiation answers."""
    parts: Parts = [
        (
            b"",
            b"HTTP/1.1 101 Switching Protocols",
            [b"HTTP/1.1 101 ", b"HTTP/1.0 101", b"HTTP/1.1 200 OK"],
        ),
        (b"Upgrade", b"websocket", [None, b"\xff"]),
        (b"Connection", b"Upgrade", [None, b"\xff"]),
        (b"Sec-WebSocket-Accept", generate_accept_token(key), [None, b"x"]),
    ]
    negotiation = [
        (b"Sec-WebSocket-Extensions", draw(_extension_headers() | st.none())),
        (b"Sec-WebSocket-Protocol", draw(_subprotocol_headers() | st.none())),
    ]
    return _head(draw, parts, negotiation)


@settings(max_examples=400)
@given(
    data=st.data(),
    subprotocols=st.lists(st.sampled_from(["chat", "v2"]), max_size=2),
    after=st.lists(st.binary(max_size=100), max_size=3),
    cuts=st.lists(st.integers(0, 1000), max_size=4),
)
def test_any_upgrade_response_raises_only_protocol_error(
    data: st.DataObject, subprotocols: list[str], after: list[bytes], cuts: list[int]
) -> None:
    client = ClientConnection("example.com", "/", subprotocols=subprotocols, max_message_size=LIMIT)
    (key,) = re.findall(rb"Sec-WebSocket-Key: (\S+)", client.data_to_send())
    response = data.draw(_upgrade_responses(key))
    _feed(client, _split(response + b"".join(after), cuts))
