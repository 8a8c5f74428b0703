from __future__ import annotations

import pytest

from panther_ws.protocol import (
    Accepted,
    ClientConnection,
    ConnectionState,
    ProtocolError,
    Rejected,
    Request,
    ServerConnection,
)
from panther_ws.protocol.events import Message
from tests.protocol.helpers import frame

GOOD = (
    b"GET /ws/1/?room=a HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


def test_request_event_carries_path_query_headers_and_subprotocols() -> None:
    server = ServerConnection()
    server.receive_data(GOOD + b"Sec-WebSocket-Protocol: chat, v2\r\nX-Token: t\r\n\r\n")
    (request,) = server.events()
    assert isinstance(request, Request)
    assert (request.path, request.query_string) == ("/ws/1/", b"room=a")
    assert request.subprotocols == ("chat", "v2")
    assert (b"x-token", b"t") in request.headers
    assert (b"host", b"example.com") in request.headers


def test_accept_answers_with_the_rfc_example_token() -> None:
    server = ServerConnection()
    server.receive_data(GOOD + b"\r\n")
    list(server.events())
    server.accept()
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response
    assert server.state is ConnectionState.OPEN


def test_request_arriving_byte_by_byte() -> None:
    server = ServerConnection()
    for byte in GOOD + b"\r\n":
        server.receive_data(bytes([byte]))
    assert isinstance(next(server.events()), Request)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (GOOD.replace(b"GET", b"POST") + b"\r\n", b"400"),
        (GOOD.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"") + b"\r\n", b"400"),
        (GOOD.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"not-base64!") + b"\r\n", b"400"),
        (GOOD.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ=") + b"\r\n", b"400"),
        (GOOD.replace(b"Version: 13", b"Version: 8") + b"\r\n", b"426"),
        (GOOD.replace(b"Upgrade: websocket\r\n", b"") + b"\r\n", b"426"),
        (b"\x16\x03\x01garbage that is not http\r\n\r\n", b"400"),
        (GOOD + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
    ids=[
        "not-get",
        "no-key",
        "bad-key",
        "short-key",
        "version",
        "no-upgrade",
        "garbage",
        "huge-head",
    ],
)
def test_bad_handshakes_raise_protocol_error_with_a_response_queued(
    request_bytes: bytes, status: bytes
) -> None:
    server = ServerConnection()
    with pytest.raises(ProtocolError, match="invalid upgrade request"):
        server.receive_data(request_bytes)
    assert server.data_to_send().split(b" ")[1] == status
    assert server.state is ConnectionState.CLOSED


def test_client_queues_its_request_and_validates_the_accept_token() -> None:
    client = ClientConnection("example.com", "/x")
    request = client.data_to_send()
    assert request.startswith(b"GET /x HTTP/1.1\r\n")
    with pytest.raises(ProtocolError, match="invalid upgrade response"):
        client.receive_data(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: wrong=\r\n\r\n"
        )


def test_rejection_with_status_headers_and_body() -> None:
    client = ClientConnection("example.com", "/x")
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    list(server.events())
    server.reject(401, [(b"www-authenticate", b"Bearer")], b"who are you")
    client.receive_data(server.data_to_send())
    (rejected,) = client.events()
    assert isinstance(rejected, Rejected)
    assert (rejected.status_code, rejected.body) == (401, b"who are you")
    assert client.state is ConnectionState.CLOSED


def test_subprotocol_must_have_been_offered() -> None:
    client = ClientConnection("example.com", "/", subprotocols=["chat"])
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    list(server.events())
    with pytest.raises(ProtocolError, match="did not offer"):
        server.accept("other")
    server.accept("chat")
    client.receive_data(server.data_to_send())
    assert list(client.events()) == [Accepted(subprotocol="chat", headers=())]


def test_frames_pipelined_before_accept_are_kept() -> None:
    server = ServerConnection()
    server.receive_data(GOOD + b"\r\n" + frame(0x1, b"early"))
    list(server.events())
    server.receive_data(frame(0x1, b"later"))
    server.accept()
    assert list(server.events()) == [Message("early"), Message("later")]


def test_calls_in_the_wrong_state_name_the_call_and_state() -> None:
    server = ServerConnection()
    with pytest.raises(ProtocolError, match=r"send\(\) cannot be called in state CONNECTING"):
        server.send("x")
    with pytest.raises(
        ProtocolError, match=r"accept\(\) cannot be called in state CONNECTING \(no Request"
    ):
        server.accept()


def test_eof_during_the_handshake_closes_1006() -> None:
    server = ServerConnection()
    server.receive_data(GOOD)
    server.receive_data(None)
    assert [type(e).__name__ for e in server.events()] == ["Closed"]
    assert server.close_code == 1006


def test_permessage_deflate_negotiated_only_when_enabled() -> None:
    for enabled in (True, False):
        client = ClientConnection("example.com", "/")
        server = ServerConnection(permessage_deflate=enabled)
        server.receive_data(client.data_to_send())
        list(server.events())
        server.accept()
        response = server.data_to_send()
        assert (b"permessage-deflate" in response) is enabled
        client.receive_data(response)
        list(client.events())
        client.send("squeeze " * 100)
        data = client.data_to_send()
        assert (len(data) < 200) is enabled
        server.receive_data(data)
        assert list(server.events()) == [Message("squeeze " * 100)]
