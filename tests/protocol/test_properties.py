"""Properties of the core over generated input (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from panther_ws.protocol import (
    ClientConnection,
    ConnectionState,
    Message,
    ProtocolError,
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
