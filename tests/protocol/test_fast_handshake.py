"""The handshake's fast path against wsproto's handshake: same events, errors and bytes.

``panther_ws/protocol/_fast_handshake.py`` parses a simple upgrade request (server) or 101
(client) and writes the answer (server) or the request (client) without h11; everything else
goes to wsproto's handshake. These tests give the same bytes, split at any points, with and
without frames pipelined after the head, to a connection with the fast path and to one with
it switched off (``_fast_handshake = False``: every handshake through wsproto and h11, the
reference), answer the same way, and compare every event, error, byte to send and state.
The heads are drawn near the edge of what the fast path takes: valid, slightly odd (tabs,
bare LF, obs-fold, repeated or special headers, non-ASCII) and invalid.
"""

from __future__ import annotations

import base64
import gc
import itertools
import sys
import types
from collections.abc import Callable, Iterator
from unittest import mock

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.handshake import H11Handshake
from wsproto.utilities import generate_accept_token

from panther_ws.protocol import ClientConnection, Request, ServerConnection
from panther_ws.protocol.connection import Connection
from panther_ws.protocol.events import Event
from panther_ws.protocol.exceptions import ProtocolError
from panther_ws_testing.strategies import encode_frame
from tests.protocol.helpers import open_pair


class _ReferenceServer(ServerConnection):
    _fast_handshake = False


class _ReferenceClient(ClientConnection):
    _fast_handshake = False


_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
# What os.urandom gives while a test builds its clients: both draw the same key.
_NONCE_BYTES = b"\x07" * 16
_NONCE = base64.b64encode(_NONCE_BYTES)
_DEFLATE_OFFER = b"permessage-deflate; client_max_window_bits"

# -- requests and responses near the fast path's edges ------------------------------------

_odd_values = st.sampled_from(
    [b"", b" ", b"a\tb", b"\tx", b"x ", b"caf\xc3\xa9", b"\xff", b"a\x00b", b"a\x01", b"a  b"]
)
_names = st.sampled_from([b"X-Token", b"x-a", b"User-Agent", b"Origin", b"Cookie"])
_odd_names = st.sampled_from(
    [b"Content-Length", b"Transfer-Encoding", b"Expect", b"bad name", b"x(y)", b"", b"caf\xc3\xa9"]
)


_MUTATIONS = ["drop", "change", "twice", "case", "tab", "no space", "trailing", "fold", "extra"]


@st.composite
def _header_lines(draw: st.DrawFn, essentials: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The essential header lines, as a client or server writes them, then a few mutations
    (most heads get none, so the fast path's own cases are explored as much as its edges)."""
    lines = [name + b": " + value for name, value in essentials]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(_names)
        lines.append(name + b": " + draw(st.sampled_from([b"1", b"t", b"a b", b"0"])))
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2]))):
        where = draw(st.integers(0, len(lines) - 1)) if lines else 0
        kind = draw(st.sampled_from(_MUTATIONS))
        name, _, value = lines[where].partition(b": ") if lines else (b"x", b"", b"y")
        if kind == "drop" and lines:
            del lines[where]
        elif kind == "change":
            value = draw(_odd_values | st.sampled_from([b"13 ", b"8", b"close", b"h2c"]))
            lines[where] = name + b": " + value
        elif kind == "twice":
            lines.insert(where, name + b": " + draw(st.sampled_from([value, b"other"])))
        elif kind == "case":
            lines[where] = name.upper() + b": " + value.lower()
        elif kind == "tab":
            lines[where] = name + b":\t" + value
        elif kind == "no space":
            lines[where] = name + b":" + value
        elif kind == "trailing":
            lines[where] = name + b": " + value + draw(st.sampled_from([b" ", b"\t", b"  "]))
        elif kind == "fold":
            lines.insert(where, b" folded")
        else:
            lines.insert(where, draw(_odd_names | _names) + b": " + draw(_odd_values | _names))
    return draw(st.permutations(lines)) if draw(st.integers(0, 4)) == 0 else lines


def _join(draw: st.DrawFn, start: bytes, lines: list[bytes]) -> bytes:
    ending = draw(st.sampled_from([b"\r\n"] * 20 + [b"\n", b"\r"]))
    first = draw(st.sampled_from([b"\r\n"] * 20 + [b"\n"]))  # sometimes only one line's
    return start + first + b"".join(line + ending for line in lines) + ending


def _maybe_header(
    draw: st.DrawFn, essentials: list[tuple[bytes, bytes]], name: bytes, values: list[bytes]
) -> None:
    """Half the time, ``name`` with one of ``values`` (the optional handshake headers)."""
    if draw(st.booleans()):
        essentials.append((name, draw(st.sampled_from(values))))


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET"] * 10 + [b"POST", b"get"]))
    target = draw(st.sampled_from([b"/", b"/chat?room=a"] * 3 + [b"/caf\xc3\xa9", b"*", b"/a b"]))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 10 + [b"HTTP/1.0", b"HTTP/2.0"]))
    essentials = [
        (
            b"Host",
            draw(st.sampled_from([b"example.com"] * 4 + [b"xn--caf-dma.com", b"xn--a", b"h:1"])),
        ),
        (b"Upgrade", draw(st.sampled_from([b"websocket", b"WebSocket"]))),
        (
            b"Connection",
            draw(st.sampled_from([b"Upgrade"] * 4 + [b"keep-alive, Upgrade", b"close, Upgrade"])),
        ),
        (b"Sec-WebSocket-Key", draw(st.sampled_from([_KEY] * 4 + [b"c2hvcnQ=", b"!"]))),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    _maybe_header(draw, essentials, b"Sec-WebSocket-Protocol", [b"chat, v2", b"v2"])
    _maybe_header(
        draw,
        essentials,
        b"Sec-WebSocket-Extensions",
        [
            _DEFLATE_OFFER,
            b"permessage-deflate",
            b"permessage-deflate; server_max_window_bits=x",
            b"x-foo, permessage-deflate; client_no_context_takeover",
            b"x-foo",
        ],
    )
    lines = draw(_header_lines(essentials))
    return _join(draw, method + b" " + target + b" " + version, lines)


@st.composite
def _responses(draw: st.DrawFn) -> bytes:
    status = draw(
        st.sampled_from([b"HTTP/1.1 101 Switching Protocols"] * 10)
        | st.sampled_from([b"HTTP/1.1 101", b"HTTP/1.1 101 ", b"HTTP/1.0 101 OK"])
        | st.sampled_from([b"HTTP/1.1 403 Forbidden", b"HTTP/1.1 200 OK", b"HTTP/1.1 100 Go"])
    )
    accept = generate_accept_token(_NONCE)
    essentials = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", draw(st.sampled_from([accept] * 6 + [_KEY, b""]))),
    ]
    _maybe_header(draw, essentials, b"Sec-WebSocket-Protocol", [b"chat", b"v9"])
    _maybe_header(
        draw,
        essentials,
        b"Sec-WebSocket-Extensions",
        [
            b"permessage-deflate",
            b"permessage-deflate; client_max_window_bits=12",
            b"permessage-deflate; server_max_window_bits=x",
            b"x-foo",
            b"",
        ],
    )
    lines = draw(_header_lines(essentials))
    head = _join(draw, status, lines)
    if not status.startswith(b"HTTP/1.1 101") and draw(st.booleans()):
        head = head.replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\n", 1) + b"nope"
    return head


def _frames(mask: bool) -> st.SearchStrategy[bytes]:
    one = st.builds(
        lambda opcode, payload: encode_frame(
            opcode, payload, fin=True, mask=b"abcd" if mask else None, rsv=0
        ),
        st.sampled_from([1, 2, 9, 8]),
        st.sampled_from([b"", b"hi", b"\x03\xe8"]),
    )
    return st.lists(one, max_size=3).map(b"".join)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a] or [data]


# -- running both -------------------------------------------------------------------------


def _outcome(connection: Connection, action: Callable[[], object]) -> tuple[object, ...]:
    """What one call did: its error's message, or its events; then the bytes it queued."""
    try:
        action()
        events: list[Event] = list(connection.events())
    except ProtocolError as exc:
        return "ProtocolError", str(exc), connection.data_to_send()
    return "events", events, connection.data_to_send()


def _both(fast: Connection, slow: Connection, call: Callable[[Connection], object]) -> list[Event]:
    """Make the same call on both; they must do the same. Returns the events, if any."""
    outcome = _outcome(fast, lambda: call(fast))
    assert outcome == _outcome(slow, lambda: call(slow))
    assert fast.state is slow.state
    assert (fast.close_code, fast.close_reason) == (slow.close_code, slow.close_reason)
    return outcome[1] if outcome[0] == "events" else []  # type: ignore[return-value]


_ANSWERS = st.one_of(
    st.tuples(
        st.just("accept"),
        st.sampled_from([None, None, "chat", "v2"]),
        st.sampled_from([(), (), [("X-Server", "1")], [("Bad Name", "x")], [("x", "a\tb")]])
        | st.sampled_from([[("Host", "h")], [("Content-Length", "0")], [("x", "caf\xe9")]]),
    ),
    st.tuples(
        st.just("reject"),
        st.sampled_from([403, 404, 101, 200]),
        st.sampled_from([(), [("X-Why", "no")], [("Content-Length", "2")]]),
        st.sampled_from([b"", b"no"]),
    ),
)

# Mostly one read (the fast path's case), else split anywhere.
_CUTS = st.just([]) | st.just([]) | st.lists(st.integers(0, 600), min_size=1, max_size=4)
_FUZZ = settings(max_examples=500, deadline=None)


@_FUZZ
@given(
    head=_requests(),
    frames=_frames(mask=True),
    cuts=_CUTS,
    answer=_ANSWERS,
    later=_frames(mask=True),
    deflate=st.booleans(),
    limit=st.sampled_from([16 * 1024, 16 * 1024, 200]),
)
def test_a_server_takes_any_request_as_wsproto_does(
    head: bytes,
    frames: bytes,
    cuts: list[int],
    answer: tuple[object, ...],
    later: bytes,
    deflate: bool,
    limit: int,
) -> None:
    _run_servers(head + frames, cuts, answer, later, deflate=deflate, limit=limit)


def _run_servers(
    received: bytes,
    cuts: list[int],
    answer: tuple[object, ...],
    later: bytes,
    *,
    deflate: bool = True,
    limit: int = 16 * 1024,
) -> None:
    fast = ServerConnection(permessage_deflate=deflate, max_request_size=limit)
    slow = _ReferenceServer(permessage_deflate=deflate, max_request_size=limit)
    requested = False
    for chunk in _split(received, cuts):
        if fast.state.value == "CLOSED":
            break
        events = _both(fast, slow, lambda c, chunk=chunk: c.receive_data(chunk))
        requested = requested or any(isinstance(event, Request) for event in events)
    if not requested or fast.state.value != "CONNECTING":
        return
    if answer[0] == "accept":
        _, subprotocol, headers = answer
        _both(fast, slow, lambda c: c.accept(subprotocol, headers))  # type: ignore[attr-defined]
    else:
        _, status, headers, body = answer
        _both(fast, slow, lambda c: c.reject(status, headers, body))  # type: ignore[attr-defined]
    if fast.state.value == "OPEN":
        _both(fast, slow, lambda c: c.receive_data(later))
        _both(fast, slow, lambda c: c.receive_data(None))


@_FUZZ
@given(
    subprotocols=st.sampled_from([(), ("chat",), ("chat",), ("chat", "v2")])
    | st.sampled_from([(" x",), ("a\x00",), ("é",), ("a\tb",), ("",)]),
    headers=st.sampled_from([(), (), (), [("X-Token", "t")], [("Host", "h")], [("x", "a\tb")]])
    | st.sampled_from([[("bad name", "x")], [("x", "\xe9")], [("Connection", "close")]]),
    host=st.sampled_from(
        ["example.com"] * 6 + ["example.com:8000", "café.fr", "a..b", "[::1]", "a b", " x"]
    ),
    path=st.sampled_from(["/"] * 6 + ["", "/chat?x=1", "/café", "/a b", "/a\x00"]),
    deflate=st.booleans(),
    response=_responses(),
    frames=_frames(mask=False),
    cuts=_CUTS,
    later=_frames(mask=False),
)
def test_a_client_takes_any_response_as_wsproto_does(
    subprotocols: tuple[str, ...],
    headers: list[tuple[str, str]],
    host: str,
    path: str,
    deflate: bool,
    response: bytes,
    frames: bytes,
    cuts: list[int],
    later: bytes,
) -> None:
    # Keys and masks from a fixed "os.urandom": both clients send the same bytes.
    with mock.patch("os.urandom", lambda size: _NONCE_BYTES[:size]):
        _run_clients(
            lambda cls: cls(
                host, path, headers=headers, subprotocols=subprotocols, permessage_deflate=deflate
            ),
            _split(response + frames, cuts),
            later,
        )


def _run_clients(
    build: Callable[[type[ClientConnection]], ClientConnection], reads: list[bytes], later: bytes
) -> None:
    built: list[ClientConnection | str] = []
    for cls in (ClientConnection, _ReferenceClient):
        try:
            built.append(build(cls))
        except ProtocolError as exc:
            built.append(str(exc))
    fast, slow = built
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
        return
    assert fast.data_to_send() == slow.data_to_send()
    for chunk in reads:
        if fast.state.value == "CLOSED":
            break
        _both(fast, slow, lambda c, chunk=chunk: c.receive_data(chunk))
    if fast.state.value == "OPEN":
        _both(fast, slow, lambda c: c.receive_data(later))
    if fast.state.value != "CLOSED":
        _both(fast, slow, lambda c: c.receive_data(None))


# -- every single change to a simple head -------------------------------------------------

_REQUEST_LINES = [
    b"Host: example.com",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: " + _KEY,
    b"Sec-WebSocket-Version: 13",
    b"Sec-WebSocket-Protocol: chat, v2",
    b"Sec-WebSocket-Extensions: " + _DEFLATE_OFFER,
    b"X-Token: t",
]
_RESPONSE_LINES = [
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Accept: " + generate_accept_token(_NONCE),
    b"Sec-WebSocket-Protocol: chat",
    b"Sec-WebSocket-Extensions: permessage-deflate",
    b"X-Server: 1",
]
_VALUES = [b"", b"0", b"5", b"8", b"13", b"h2c", b"close", b"close, Upgrade", b"keep-alive"]
_VALUES += [b"Upgrade, close", b"chunked", b"100-continue", b"x-foo", b"a\tb", b"\xff"]


def _single_changes(start: bytes, lines: list[bytes]) -> Iterator[bytes]:
    """The simple head, then every head one change away from it: each line dropped, repeated,
    given another case or value, or followed by a header h11 or wsproto reads."""

    def head(changed: list[bytes]) -> bytes:
        return start + b"\r\n" + b"".join(line + b"\r\n" for line in changed) + b"\r\n"

    yield head(lines)
    for index, line in enumerate(lines):
        name, _, value = line.partition(b": ")
        before, after = lines[:index], lines[index + 1 :]
        yield head(before + after)
        yield head([*before, line, line, *after])
        yield head([*before, name.upper() + b": " + value.upper(), *after])
        for other in _VALUES:
            yield head([*before, name + b": " + other, *after])
    for name in [b"Content-Length", b"Transfer-Encoding", b"Expect", b"Host", b"Connection"]:
        for other in _VALUES:
            yield head([*lines, name + b": " + other])


_FRAME = encode_frame(1, b"hi", fin=True, mask=b"abcd")
_SERVER_FRAME = encode_frame(1, b"hi", fin=True, mask=None)


@pytest.mark.parametrize(
    "head",
    [
        *_single_changes(b"GET /chat HTTP/1.1", _REQUEST_LINES),
        *_single_changes(b"GET /chat HTTP/1.0", _REQUEST_LINES[:5]),
        *_single_changes(b"POST /chat HTTP/1.1", _REQUEST_LINES[:5]),
    ],
)
def test_a_server_takes_each_near_simple_request_as_wsproto_does(head: bytes) -> None:
    for answer in [("accept", "chat", ()), ("accept", None, [("X-A", "1")])]:
        _run_servers(head + _FRAME, [], answer, _FRAME)
    _run_servers(head + _FRAME, [], ("reject", 403, [("X-Why", "no")], b"no"), b"")


@pytest.mark.parametrize(
    "head",
    [
        *_single_changes(b"HTTP/1.1 101 Switching Protocols", _RESPONSE_LINES),
        *_single_changes(b"HTTP/1.1 101", _RESPONSE_LINES[:3]),
        *_single_changes(b"HTTP/1.0 101 Switching Protocols", _RESPONSE_LINES[:3]),
        *_single_changes(b"HTTP/1.1 403 Forbidden", [b"Content-Length: 2"]),
    ],
)
def test_a_client_takes_each_near_simple_response_as_wsproto_does(head: bytes) -> None:
    with mock.patch("os.urandom", lambda size: _NONCE_BYTES[:size]):
        _run_clients(
            lambda cls: cls("example.com", "/chat", subprotocols=["chat", "v2"]),
            [head + _SERVER_FRAME],
            _SERVER_FRAME,
        )


# -- the fast path is taken, and leaves nothing behind --------------------------------------


_NOT_STATE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
)


def _reachable(root: object) -> Iterator[object]:
    seen, todo = {id(root)}, [root]
    while todo:
        item = todo.pop()
        yield item
        for referent in gc.get_referents(item):
            # Code and the modules it reaches are not the connection's state: through a
            # function's globals, everything any earlier test left alive is reachable.
            if id(referent) not in seen and not isinstance(referent, _NOT_STATE):
                seen.add(id(referent))
                todo.append(referent)


def _holds_handshake(connection: Connection) -> bool:
    return any(isinstance(item, h11.Connection | H11Handshake) for item in _reachable(connection))


@pytest.mark.parametrize("deflate", [False, True])
def test_a_simple_handshake_never_builds_wsprotos(deflate: bool) -> None:
    client = ClientConnection(
        "example.com", "/chat", subprotocols=["chat"], permessage_deflate=deflate
    )
    server = ServerConnection(permessage_deflate=deflate)
    assert not _holds_handshake(client)
    server.receive_data(client.data_to_send() + encode_frame(1, b"early", fin=True, mask=b"abcd"))
    assert isinstance(next(server.events()), Request)
    assert not _holds_handshake(server)
    server.accept("chat", headers={"X-Server": "1"})
    client.receive_data(server.data_to_send())
    assert [type(event).__name__ for event in client.events()] == ["Accepted"]
    assert [event.data for event in server.events()] == ["early"]  # type: ignore[attr-defined]
    assert not _holds_handshake(client)
    assert not _holds_handshake(server)


@pytest.mark.parametrize("fast", [True, False])
def test_an_open_connection_keeps_no_handshake_objects(fast: bool) -> None:
    server_class = ServerConnection if fast else _ReferenceServer
    client_class = ClientConnection if fast else _ReferenceClient
    client = client_class("example.com", "/", headers=[("x", "a\tb")])  # wsproto's request
    server = server_class()
    server.receive_data(client.data_to_send())
    list(server.events())
    server.accept(headers=[("x", "a\tb")])  # an answer only h11 writes
    client.receive_data(server.data_to_send())
    list(client.events())
    assert not _holds_handshake(client)
    assert not _holds_handshake(server)


def test_wsprotos_client_primed_after_our_request_sent_the_same_bytes() -> None:
    with mock.patch("os.urandom", lambda size: _NONCE_BYTES[:size]):
        fast = ClientConnection("example.com", "/", subprotocols=["chat"])
        assert fast._request is not None
        primed = fast._prime(fast._request, fast._nonce)
    assert primed == fast.data_to_send()
    fast.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert [type(event).__name__ for event in fast.events()] == ["Rejected"]


def test_an_idle_connection_keeps_no_event_storage() -> None:
    """Events are kept in a list emptied once all are yielded (a deque keeps a 760-byte
    block for ever): what 10,000 idle connections hold adds up."""
    client, server = open_pair()
    for _ in range(100):
        client.send("hello")
    server.receive_data(client.data_to_send())
    assert len(list(server.events())) == 100
    assert sys.getsizeof(server._events) == sys.getsizeof([])
    assert not server.has_pending_input
