from __future__ import annotations

import pytest

from panther_ws.protocol import Closed, ConnectionState, Message, Ping, Pong, ProtocolError
from panther_ws.protocol import connection as connection_module
from panther_ws.protocol.close_codes import is_sendable_close_code
from tests.protocol.helpers import close_payload, frame, open_pair, pump

SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


def test_the_module_names_of_the_states_are_the_enum_members() -> None:
    # The core compares states with these names; a state added to the enum needs one too.
    for state in ConnectionState:
        assert getattr(connection_module, state.name) is state


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_messages_of_every_length_class_both_ways(size: int, kind: str) -> None:
    client, server = open_pair(max_message_size=2 << 20)
    data: str | bytes = (
        "é" * (size // 2)
        if kind == "text"
        else bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    )
    client.send(data)
    assert pump(client, server) == [Message(data)]
    server.send(data)
    assert pump(server, client) == [Message(data)]


def test_fragments_with_interleaved_pings_are_reassembled() -> None:
    _, server = open_pair()
    server.receive_data(
        frame(0x1, b"hel", fin=False)
        + frame(0x9, b"p1")
        + frame(0x0, b"lo ", fin=False)
        + frame(0xA, b"unsolicited")
        + frame(0x0, b"world")
    )
    assert list(server.events()) == [Ping(b"p1"), Pong(b"unsolicited"), Message("hello world")]
    assert b"p1" in server.data_to_send()  # the pong was queued


def test_utf8_split_across_fragments_is_fine_but_invalid_utf8_is_1007() -> None:
    _, server = open_pair()
    euro = "€".encode()
    server.receive_data(frame(0x1, euro[:1], fin=False) + frame(0x0, euro[1:]))
    assert list(server.events()) == [Message("€")]
    server.receive_data(frame(0x1, euro[:1], fin=False) + frame(0x0, b"\xff", fin=False))
    assert list(server.events()) == [Closed(1007, server.close_reason or "")]
    assert server.close_code == 1007


def test_server_refuses_unmasked_frames() -> None:
    _, server = open_pair()
    server.receive_data(frame(0x1, b"hi", mask=False))
    (closed,) = server.events()
    assert isinstance(closed, Closed)
    assert closed.code == 1002
    assert server.data_to_send().startswith(b"\x88")  # a close frame is queued


def test_client_refuses_masked_frames() -> None:
    client, _ = open_pair()
    client.receive_data(frame(0x1, b"hi", mask=True))
    (closed,) = client.events()
    assert isinstance(closed, Closed)
    assert closed.code == 1002
    assert client.state is ConnectionState.CLOSED


@pytest.mark.parametrize(
    "bad",
    [
        frame(0x1, b"x", rsv=4),
        frame(0x3, b""),
        frame(0x9, b"p" * 126),
        frame(0x9, b"", fin=False),
        frame(0x0, b"orphan continuation"),
        frame(0x1, b"a", fin=False) + frame(0x1, b"b"),
    ],
    ids=["rsv", "opcode", "big-ping", "fragmented-ping", "continuation", "interrupted"],
)
def test_protocol_violations_close_1002_after_earlier_messages(bad: bytes) -> None:
    _, server = open_pair()
    server.receive_data(frame(0x1, b"valid first") + bad)
    events = list(server.events())
    assert events[0] == Message("valid first")
    assert isinstance(events[-1], Closed)
    assert events[-1].code == 1002
    assert server.data_to_send().startswith(b"\x88")


def test_max_message_size_across_fragments_is_1009() -> None:
    _, server = open_pair(max_message_size=100)
    server.receive_data(frame(0x2, b"a" * 60, fin=False) + frame(0x0, b"b" * 60))
    events = list(server.events())
    assert isinstance(events[-1], Closed)
    assert events[-1].code == 1009
    assert server._fragments_size == 0


def test_close_from_the_client_with_a_code() -> None:
    client, server = open_pair()
    client.close(4000, "bye")
    assert client.state is ConnectionState.CLOSING
    assert pump(client, server) == [Closed(4000, "bye")]
    assert server.state is ConnectionState.CLOSED
    assert pump(server, client) == [Closed(4000, "bye")]
    assert (client.close_code, client.close_reason) == (4000, "bye")


def test_close_from_the_server_without_a_code() -> None:
    client, server = open_pair()
    server.receive_data(frame(0x8, b""))
    assert list(server.events()) == [Closed(1005, "")]
    client.receive_data(server.data_to_send())
    (closed,) = client.events()
    assert isinstance(closed, Closed)


def test_close_between_fragments_is_a_normal_close() -> None:
    _, server = open_pair()
    server.receive_data(
        frame(0x1, b"frag", fin=False) + frame(0x8, close_payload(1000)) + frame(0x0, b"ment")
    )
    assert list(server.events()) == [Closed(1000, "")]


@pytest.mark.parametrize("side", ["server", "client"])
def test_every_close_code_an_endpoint_may_send_arrives_as_sent(side: str) -> None:
    sendable = [code for code in range(1 << 16) if is_sendable_close_code(code)]
    assert {1014, 3000, 4999} <= set(sendable)
    for code in sendable:
        client, server = open_pair()
        sender, receiver = (client, server) if side == "server" else (server, client)
        sender.close(code, "why")
        assert pump(sender, receiver) == [Closed(code, "why")]
        assert pump(receiver, sender) == [Closed(code, "why")]  # echoed


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes_received_are_1002(code: int, side: str) -> None:
    client, server = open_pair()
    receiver = server if side == "server" else client
    receiver.receive_data(frame(0x8, close_payload(code), mask=side == "server"))
    (closed,) = receiver.events()
    assert closed == Closed(1002, receiver.close_reason or "")


def test_invalid_utf8_close_reason_is_1007() -> None:
    _, server = open_pair()
    server.receive_data(frame(0x8, close_payload(1000, b"\xff")))
    assert next(server.events()).code == 1007  # type: ignore[attr-defined]


def test_eof_without_close_is_1006_and_reported_once() -> None:
    _, server = open_pair()
    server.receive_data(None)
    server.receive_data(None)
    assert list(server.events()) == [Closed(1006, "")]


def test_bytes_after_close_raise_protocol_error() -> None:
    client, server = open_pair()
    client.close()
    pump(client, server)
    with pytest.raises(ProtocolError, match="in state CLOSED"):
        server.receive_data(b"\x81\x80more")


def test_local_misuse_is_a_protocol_error() -> None:
    client, _ = open_pair()
    with pytest.raises(ProtocolError, match="may not send"):
        client.close(1005)
    with pytest.raises(ProtocolError, match="at most 123"):
        client.close(1000, "x" * 124)
    with pytest.raises(ProtocolError, match="at most 125"):
        client.ping(b"x" * 126)
    with pytest.raises(ProtocolError, match="takes str or bytes"):
        client.send(42)  # type: ignore[arg-type]
    client.close()
    with pytest.raises(ProtocolError, match=r"close\(\) cannot be called in state CLOSING"):
        client.close()
