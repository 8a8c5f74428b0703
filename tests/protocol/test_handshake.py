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
from panther_ws.protocol._headers import HeadersInput
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
        (GOOD.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n", b"505"),
        (GOOD + b"Sec-WebSocket-Protocol: \xff\r\n\r\n", b"400"),
        (GOOD + b"Sec-WebSocket-Extensions: \xff\r\n\r\n", b"400"),
        (GOOD.replace(b"Upgrade\r\n", b"\xffUpgrade\r\n") + b"\r\n", b"400"),
        (GOOD.replace(b"example.com", b"xn--\xff.com") + b"\r\n", b"400"),
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
        "http-1.0",
        "non-ascii-subprotocol",
        "non-ascii-extension",
        "non-ascii-connection",
        "bad-host",
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


@pytest.mark.parametrize("split", range(len(GOOD) - 2, len(GOOD) + 3))
def test_frames_read_with_the_head_do_not_count_towards_its_limit(split: int) -> None:
    frames = [frame(0x2, bytes([n]) * 1000) for n in range(40)]  # 40 KB, over the 16 KiB
    stream = GOOD + b"\r\n" + b"".join(frames)
    server = ServerConnection()
    server.receive_data(stream[:split])  # the blank line may end in either read
    server.receive_data(stream[split:])
    assert isinstance(next(server.events()), Request)
    server.accept()
    assert list(server.events()) == [Message(bytes([n]) * 1000) for n in range(40)]


@pytest.mark.parametrize(
    "offer",
    [
        b"permessage-deflate; client_max_window_bits=abc",
        b"permessage-deflate; server_max_window_bits=",
        b"permessage-deflate; server_max_window_bits=99",
        b"permessage-deflate; client_max_window_bits=8",
    ],
)
def test_a_deflate_offer_we_cannot_honour_is_declined(offer: bytes) -> None:
    server = ServerConnection()
    server.receive_data(GOOD + b"Sec-WebSocket-Extensions: " + offer + b"\r\n\r\n")
    list(server.events())
    server.accept()
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"permessage-deflate" not in response
    server.receive_data(frame(0x1, b"plain"))
    assert list(server.events()) == [Message("plain")]


def test_a_declined_offer_leaves_nothing_in_the_fallback_offer_after_it() -> None:
    offers = b"permessage-deflate; client_no_context_takeover; client_max_window_bits=x, "
    server = ServerConnection()
    server.receive_data(
        GOOD + b"Sec-WebSocket-Extensions: " + offers + b"permessage-deflate\r\n\r\n"
    )
    list(server.events())
    server.accept()
    assert b"Sec-WebSocket-Extensions: permessage-deflate\r\n" in server.data_to_send()


def _accepted_response(client: ClientConnection, extra: bytes) -> bytes:
    server = ServerConnection(permessage_deflate=False)
    server.receive_data(client.data_to_send())
    list(server.events())
    server.accept()
    return server.data_to_send().replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n\r\n")


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (
            b"Sec-WebSocket-Extensions: \xff",
            "header Sec-WebSocket-Extensions b'\\xff' is not ASCII",
        ),
        (b"Sec-WebSocket-Protocol: \xff", "header Sec-WebSocket-Protocol b'\\xff' is not ASCII"),
        (b"Connection: Upgrade, \xff", "header Connection b'Upgrade, \\xff' is not ASCII"),
        (
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits",
            "'server_max_window_bits' needs a value from 9 to 15, got ''",
        ),
        (
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99",
            "'server_max_window_bits' needs a value from 9 to 15, got '99'",
        ),
        (
            b"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover=1",
            "'client_no_context_takeover' takes no value",
        ),
        (
            b"Sec-WebSocket-Extensions: permessage-deflate; mystery",
            "'mystery' is not a permessage-deflate parameter",
        ),
        (
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; "
            b"server_max_window_bits=10",
            "'server_max_window_bits' is repeated",
        ),
        (
            b"Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate",
            "accepts permessage-deflate twice",
        ),
    ],
    ids=[
        "extensions-not-ascii",
        "subprotocol-not-ascii",
        "connection-not-ascii",
        "window-without-value",
        "window-out-of-range",
        "flag-with-value",
        "unknown-parameter",
        "repeated-parameter",
        "accepted-twice",
    ],
)
def test_a_hostile_101_raises_only_protocol_error_naming_the_header(
    header: bytes, complaint: str
) -> None:
    client = ClientConnection("example.com", "/")
    with pytest.raises(ProtocolError, match="invalid upgrade response") as raised:
        client.receive_data(_accepted_response(client, header))
    assert complaint in str(raised.value)
    assert client.state is ConnectionState.CLOSED


def test_a_server_answer_within_the_parameters_is_taken() -> None:
    client = ClientConnection("example.com", "/")
    answer = b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10"
    client.receive_data(_accepted_response(client, answer))
    assert list(client.events()) == [Accepted(subprotocol=None, headers=())]


HEADER_FORMS: list[HeadersInput] = [
    [("X-Token", "t")],
    [(b"X-Token", b"t")],
    (("X-Token", b"t"),),
    {"X-Token": "t"},
    {b"X-Token": b"t"},
]


@pytest.mark.parametrize("headers", HEADER_FORMS, ids=["str", "bytes", "mixed", "dict", "bdict"])
def test_headers_are_str_or_bytes_pairs_or_a_mapping_everywhere(headers: HeadersInput) -> None:
    client = ClientConnection("example.com", "/", headers=headers)
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    (request,) = server.events()
    assert isinstance(request, Request)
    assert (b"x-token", b"t") in request.headers
    server.accept(headers=headers)
    client.receive_data(server.data_to_send())
    assert list(client.events()) == [Accepted(subprotocol=None, headers=((b"x-token", b"t"),))]
    rejecting = ServerConnection()
    rejecting.receive_data(GOOD + b"\r\n")
    list(rejecting.events())
    rejecting.reject(401, headers=headers)
    assert b"\r\nX-Token: t\r\n" in rejecting.data_to_send()


@pytest.mark.parametrize(
    ("headers", "complaint"),
    [
        ([("x-count", 3)], "is int, not str or bytes"),
        ([("x-only-a-name",)], "is not a (name, value) pair"),
        (["xy"], "'xy' is not a (name, value) pair"),
        ("x-token: t", "they are one str"),
        ([("x-caf\u00e9", "t")], "codec can't encode"),
    ],
    ids=["int-value", "one-item", "str-pair", "str", "non-ascii-name"],
)
def test_headers_of_another_shape_raise_protocol_error_naming_the_call(
    headers: HeadersInput, complaint: str
) -> None:
    with pytest.raises(ProtocolError, match=r"ClientConnection\(\) got headers") as raised:
        ClientConnection("example.com", "/", headers=headers)
    assert complaint in str(raised.value)
    server = ServerConnection()
    server.receive_data(GOOD + b"\r\n")
    list(server.events())
    with pytest.raises(ProtocolError, match=r"accept\(\) got headers"):
        server.accept(headers=headers)
    with pytest.raises(ProtocolError, match=r"reject\(\) got headers"):
        server.reject(headers=headers)


def test_a_header_h11_refuses_in_accept_is_a_protocol_error() -> None:
    server = ServerConnection()
    server.receive_data(GOOD + b"\r\n")
    list(server.events())
    with pytest.raises(ProtocolError, match="accept\\(\\) could not build the response"):
        server.accept(headers=[("x-bad", "line\r\nbreak")])


def test_a_raised_head_limit_holds_for_a_head_split_over_reads() -> None:
    # h11 refuses an incomplete head over 16 KiB by itself, whatever our limit says.
    server = ServerConnection(max_request_size=64 * 1024)
    head = GOOD + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    for start in range(0, len(head), 8192):
        server.receive_data(head[start : start + 8192])
    (request,) = server.events()
    assert isinstance(request, Request)
    assert (b"x-big", b"a" * 40_000) in request.headers
