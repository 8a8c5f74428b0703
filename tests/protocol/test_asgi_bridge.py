"""The ASGI bridge: scopes, message mapping and the app-message validation it applies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panther_ws.protocol import ClientConnection, ServerConnection
from panther_ws.protocol.asgi import (
    ASGIAppMessageValidator,
    ASGIConnectionBridge,
    ASGIProtocolError,
    ClientDisconnected,
    Leniency,
    build_scope,
)
from panther_ws.protocol.events import Accepted, Closed, Message, Rejected, Request


def _handshake(
    path: str = "/ws/caf%C3%A9/?room=1", **client_kwargs: Any
) -> tuple[ClientConnection, ASGIConnectionBridge]:
    client = ClientConnection("example.com", path, **client_kwargs)
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    (request,) = server.events()
    assert isinstance(request, Request)
    bridge = ASGIConnectionBridge(
        server, request, client=("127.0.0.1", 5000), server=("127.0.0.1", 8000)
    )
    return client, bridge


def _pump(bridge: ASGIConnectionBridge, client: ClientConnection) -> list[Any]:
    client.receive_data(bridge.connection.data_to_send())
    return list(client.events())


def test_scope_carries_the_request() -> None:
    _, bridge = _handshake(subprotocols=["chat", "v2"], headers=[(b"X-Token", b"abc")])
    scope = bridge.scope
    assert scope["type"] == "websocket"
    assert scope["path"] == "/ws/café/"
    assert scope["raw_path"] == b"/ws/caf%C3%A9/"
    assert scope["query_string"] == b"room=1"
    assert scope["subprotocols"] == ["chat", "v2"]
    assert (b"host", b"example.com") in scope["headers"]
    assert (b"x-token", b"abc") in scope["headers"]
    assert scope["client"] == ["127.0.0.1", 5000]
    assert scope["server"] == ["127.0.0.1", 8000]
    assert scope["scheme"] == "ws"
    assert "websocket.http.response" in scope["extensions"]


def test_scope_headers_are_lowercase_and_share_the_requests_lowercase_pairs() -> None:
    # A scope lives as long as its connection: a copy of each pair it could share would be
    # kept for as long (~0.7 KiB of an idle server connection).
    shared = (b"x-token", b"abc")
    request = Request(path="/", headers=(shared, (b"X-Mixed", b"1"), [b"x-list", b"2"]))  # type: ignore[arg-type]
    headers = build_scope(request)["headers"]
    assert headers == [(b"x-token", b"abc"), (b"x-mixed", b"1"), (b"x-list", b"2")]
    assert headers[0] is shared
    assert all(type(pair) is tuple for pair in headers)  # a list pair is not shared


def test_accept_with_subprotocol_and_panthers_empty_headers_dict() -> None:
    client, bridge = _handshake(subprotocols=["chat"])
    bridge.apply_app_message({"type": "websocket.accept", "subprotocol": "chat", "headers": {}})
    (accepted,) = _pump(bridge, client)
    assert accepted == Accepted(subprotocol="chat", headers=())


def test_messages_both_ways() -> None:
    client, bridge = _handshake()
    bridge.apply_app_message({"type": "websocket.accept"})
    _pump(bridge, client)
    client.send("hi")
    client.send(b"\x00\x01")
    bridge.connection.receive_data(client.data_to_send())
    received = [bridge.receive_message_for(event) for event in bridge.connection.events()]
    assert received == [
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
    ]
    bridge.apply_app_message({"type": "websocket.send", "text": "back"})
    bridge.apply_app_message({"type": "websocket.send", "bytes": b"raw"})
    assert _pump(bridge, client) == [Message("back"), Message(b"raw")]


def test_close_before_accept_is_http_403() -> None:
    client, bridge = _handshake()
    bridge.apply_app_message({"type": "websocket.close", "code": 1008})
    (rejected,) = _pump(bridge, client)
    assert isinstance(rejected, Rejected)
    assert rejected.status_code == 403
    assert bridge.finished


def test_denial_response_is_sent_with_status_headers_and_body() -> None:
    client, bridge = _handshake()
    bridge.apply_app_message(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"www-authenticate", b"Bearer")],
        }
    )
    bridge.apply_app_message(
        {"type": "websocket.http.response.body", "body": b"no ", "more_body": True}
    )
    bridge.apply_app_message({"type": "websocket.http.response.body", "body": b"token"})
    (rejected,) = _pump(bridge, client)
    assert isinstance(rejected, Rejected)
    assert rejected.status_code == 401
    assert rejected.body == b"no token"
    assert (b"www-authenticate", b"Bearer") in rejected.headers


def test_app_close_reaches_the_client_and_disconnect_follows() -> None:
    client, bridge = _handshake()
    bridge.apply_app_message({"type": "websocket.accept"})
    _pump(bridge, client)
    bridge.apply_app_message({"type": "websocket.close", "code": 4001, "reason": "bye"})
    assert _pump(bridge, client) == [Closed(4001, "bye")]
    bridge.connection.receive_data(client.data_to_send())
    messages = [bridge.receive_message_for(event) for event in bridge.connection.events()]
    assert messages == [{"type": "websocket.disconnect", "code": 4001, "reason": "bye"}]


def test_send_after_the_client_left_raises_client_disconnected() -> None:
    client, bridge = _handshake()
    bridge.apply_app_message({"type": "websocket.accept"})
    _pump(bridge, client)
    client.close(1001)
    bridge.connection.receive_data(client.data_to_send())
    list(bridge.connection.events())
    with pytest.raises(ClientDisconnected):
        bridge.apply_app_message({"type": "websocket.send", "text": "late"})


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        ([{"type": "websocket.send", "text": "x"}], "send 'websocket.accept' first"),
        ([{"type": "websocket.accept"}, {"type": "websocket.accept"}], "accepted only once"),
        (
            [{"type": "websocket.close"}, {"type": "websocket.accept"}],
            "after the websocket was closed",
        ),
        ([{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1006}], "may not send"),
        (
            [{"type": "websocket.accept"}, {"type": "websocket.close", "reason": "é" * 62}],
            "124 UTF-8 bytes",
        ),
        ([{"type": "websocket.accept"}, {"type": "websocket.send"}], "exactly one of"),
        ([{"type": "websocket.bogus"}], "unknown message type 'websocket.bogus'"),
        ([{"no": "type"}], "not a dict with a string 'type'"),
        ([{"type": "websocket.accept", "subprotocol": 3}], "must be a str or None"),
        ([{"type": "websocket.http.response.body"}], "send 'websocket.http.response.start' first"),
    ],
)
def test_validator_names_what_the_app_did_wrong(
    messages: list[dict[str, Any]], complaint: str
) -> None:
    validator = ASGIAppMessageValidator()
    *valid, last = messages
    for message in valid:
        validator.check(message)
    with pytest.raises(ASGIProtocolError, match=complaint):
        validator.check(last)


_app_messages = st.lists(st.one_of(st.text(max_size=50), st.binary(max_size=50)), max_size=10)


@given(app_sends=_app_messages, client_sends=_app_messages)
def test_bridge_yields_the_same_events_as_the_core(
    app_sends: list[str | bytes], client_sends: list[str | bytes]
) -> None:
    client, bridge = _handshake()
    bridge.apply_app_message({"type": "websocket.accept"})
    _pump(bridge, client)
    for data in app_sends:
        key = "text" if isinstance(data, str) else "bytes"
        bridge.apply_app_message({"type": "websocket.send", key: data})
    assert _pump(bridge, client) == [Message(data) for data in app_sends]
    for data in client_sends:
        client.send(data)
    bridge.connection.receive_data(client.data_to_send())
    received = [bridge.receive_message_for(event) for event in bridge.connection.events()]
    assert received == [
        {"type": "websocket.receive", "text" if isinstance(d, str) else "bytes": d}
        for d in client_sends
    ]


def test_a_non_str_reason_before_accept_is_tolerated_as_a_bare_403() -> None:
    client, bridge = _handshake()
    leniency = bridge.apply_app_message(
        {"type": "websocket.close", "code": 1008, "reason": [{"loc": ["token"]}]}
    )
    assert leniency is Leniency.NON_STR_CLOSE_REASON
    (rejected,) = _pump(bridge, client)
    assert isinstance(rejected, Rejected)
    assert rejected.status_code == 403


def test_an_unsendable_code_before_accept_is_tolerated_too() -> None:
    validator = ASGIAppMessageValidator()
    leniency = validator.check({"type": "websocket.close", "code": 1005})
    assert leniency is Leniency.UNSENDABLE_CLOSE_BEFORE_ACCEPT
    assert validator.finished


def test_strict_refuses_what_it_would_tolerate() -> None:
    with pytest.raises(ASGIProtocolError, match="reason of type list"):
        ASGIAppMessageValidator(strict=True).check(
            {"type": "websocket.close", "code": 1008, "reason": ["x"]}
        )


def test_a_non_str_reason_after_accept_is_always_an_error() -> None:
    validator = ASGIAppMessageValidator()
    validator.check({"type": "websocket.accept"})
    with pytest.raises(ASGIProtocolError, match="reason of type list"):
        validator.check({"type": "websocket.close", "code": 1000, "reason": ["x"]})
