"""What each real server does where servers disagree, measured, and the warnings that say so.

Every test here asserts one server's actual answer (uvicorn 0.54 with each of its websocket
implementations, hypercorn 0.18, ``panther-ws serve``), so an upgrade that changes one is
noticed; the texts of :class:`~panther_ws_testing._differences.Behaviour` (the warnings the
test client emits, and docs/testing.md "Where servers differ") are checked against the
same numbers.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
import warnings
from typing import Any

import anyio
import orjson
import pytest

from panther_ws_testing._differences import Behaviour, ServerDifferenceWarning
from tests.hosting import apps
from tests.hosting.embedders import (
    SERVERS,
    Embedder,
    HarnessEmbedder,
    Outcome,
    Script,
    Servers,
    on,
)

pytestmark = pytest.mark.anyio

REAL = tuple(SERVERS)  # panther-ws serve and every oracle, uvicorn's legacy websockets too
LEGACY = "uvicorn-websockets"
TRUNCATED = apps.LONG_REASON[:123]


def family(server: str) -> str:
    """The :class:`Difference` field that speaks for ``server``."""
    if server == "serve":
        return "panther_ws_serve"
    return "uvicorn" if server.startswith("uvicorn") else server


def by_family(serve: Any, uvicorn: Any, hypercorn: Any) -> dict[str, Any]:
    return {
        server: {"panther_ws_serve": serve, "uvicorn": uvicorn, "hypercorn": hypercorn}[
            family(server)
        ]
        for server in REAL
    }


async def seen_by_the_app(
    host: Embedder, path: str, *, close: tuple[int, str] | None = None
) -> tuple[Outcome, Any]:
    """The outcome of a connection to ``path``, and what its app saw (see ``apps.SEEN``)."""
    key = uuid.uuid4().hex
    outcome = await host.run(path, Script(query=key, close=close))
    for _ in range(50):  # the app records after its client has its answer: wait for it
        seen = orjson.loads((await host.run("/seen", Script(query=key, receive=1))).messages[0])
        if seen is not None:
            return outcome, seen
        await anyio.sleep(0.02)
    raise AssertionError(f"the app on {host.name} recorded nothing for {path}")


# -- the app ends an open connection without closing it ---------------------------------------

RETURNED_WHILE_OPEN = by_family(serve=1000, uvicorn=1006, hypercorn=1011)
RAISED_WHILE_OPEN = by_family(serve=1011, uvicorn=1006, hypercorn=1011)


@on(*REAL)
async def test_returning_while_open(host: Embedder) -> None:
    outcome = await host.run("/send-then-return")
    assert outcome.messages == ["hi"]  # every server delivers what was sent first
    assert outcome.close_code == RETURNED_WHILE_OPEN[host.name]


@on(*REAL)
async def test_raising_while_open(host: Embedder) -> None:
    outcome = await host.run("/raise-after-accept", Script(send=["go"]))
    assert outcome.messages == ["hi"]
    assert outcome.close_code == RAISED_WHILE_OPEN[host.name]


# -- close messages no frame can carry -------------------------------------------------------

NON_STR_REASON_AFTER_ACCEPT = by_family(
    serve=(1011, "ASGIProtocolError"),
    uvicorn=(1006, "AttributeError"),
    hypercorn=(1006, "AttributeError"),
)
LONG_REASON_AFTER_ACCEPT = {
    "serve": ((1011, ""), "ASGIProtocolError"),
    "uvicorn-wsproto": ((4003, TRUNCATED), "sent"),
    "uvicorn-websockets": ((1006, ""), "ProtocolError"),
    "uvicorn-websockets-sansio": ((1006, ""), "ProtocolError"),
    "hypercorn": ((4003, TRUNCATED), "sent"),
}
SEND_AFTER_CLOSE = by_family(
    serve="ASGIProtocolError", uvicorn="RuntimeError", hypercorn="UnexpectedMessageError"
)


@on(*REAL)
async def test_a_non_str_close_reason_before_accept_is_a_bare_403_everywhere(
    host: Embedder,
) -> None:
    for path in ("/reject-with-list-reason", "/reject-with-unsendable-close", "/fastapi/items"):
        outcome = await host.run(path)
        assert outcome.status_code == 403, path


@on(*REAL)
async def test_a_non_str_close_reason_after_accept(host: Embedder) -> None:
    outcome, send_raised = await seen_by_the_app(host, "/close-with-list-reason")
    assert (outcome.close_code, send_raised) == NON_STR_REASON_AFTER_ACCEPT[host.name]


@on(*REAL)
async def test_a_close_reason_over_123_bytes_after_accept(host: Embedder) -> None:
    outcome, send_raised = await seen_by_the_app(host, "/close-with-long-reason")
    close = (outcome.close_code, outcome.close_reason)
    assert (close, send_raised) == LONG_REASON_AFTER_ACCEPT[host.name]


@on(*REAL)
async def test_a_send_after_close_raises_in_the_app_and_the_client_sees_the_close(
    host: Embedder,
) -> None:
    outcome, send_raised = await seen_by_the_app(host, "/send-after-close")
    assert (outcome.close_code, outcome.close_reason) == (4004, "done")
    assert send_raised == SEND_AFTER_CLOSE[host.name]


@on(*REAL)
async def test_the_close_code_the_app_sees_when_the_client_closes(host: Embedder) -> None:
    _, disconnect = await seen_by_the_app(host, "/record-disconnect", close=(4011, "client bye"))
    # hypercorn 0.18 reports 1006 to the app whatever the client's close frame said.
    assert disconnect == ([1006, None] if host.name == "hypercorn" else [4011, "client bye"])


def _raw_answer(port: int, path: str) -> bytes:
    """Every byte a server sends for an upgrade request to ``path``, until it closes."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize("server", REAL)
@pytest.mark.parametrize("path", ["/return-before-accept", "/raise-before-accept"])
def test_a_500_before_accept_is_the_whole_answer_except_on_uvicorns_legacy_websockets(
    servers: Servers, server: str, path: str
) -> None:
    # For an app that returns (not one that raises), uvicorn --ws websockets sends "500 ...
    # connection: close" and then a 101 on the same socket: a client that reads on past
    # the 500 finds a second response.
    answer = _raw_answer(servers.port(server), path)
    assert answer.startswith(b"HTTP/1.1 500 ")
    stray_101 = server == LEGACY and path == "/return-before-accept"
    assert (b"HTTP/1.1 101 Switching Protocols" in answer) is stray_101


# -- the warnings say what was measured ---------------------------------------------------------

WARNED = {
    "/return-while-open": Behaviour.RETURNED_WHILE_OPEN,
    "/raise-after-accept": Behaviour.RAISED_WHILE_OPEN,
    "/reject-with-list-reason": Behaviour.NON_STR_CLOSE_REASON,
    "/reject-with-unsendable-close": Behaviour.UNSENDABLE_CLOSE_BEFORE_ACCEPT,
}


@pytest.mark.parametrize("wire", [False, True], ids=["direct", "wire"])
@pytest.mark.parametrize("path", list(WARNED))
async def test_the_test_client_warns_where_servers_differ(path: str, wire: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await HarnessEmbedder(apps.app, wire=wire).run(path, Script(send=["go"]))
    messages = [str(w.message) for w in caught if issubclass(w.category, ServerDifferenceWarning)]
    assert messages == [WARNED[path].value.message]


@pytest.mark.parametrize("path", ["/close-after-accept", "/echo", "/reject", "/deny"])
async def test_the_test_client_is_silent_where_servers_agree(path: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await HarnessEmbedder(apps.app, wire=False).run(path, Script(receive=0))
    assert not [w for w in caught if issubclass(w.category, ServerDifferenceWarning)]


@pytest.mark.parametrize(
    ("behaviour", "measured"),
    [
        (Behaviour.RETURNED_WHILE_OPEN, RETURNED_WHILE_OPEN),
        (Behaviour.RAISED_WHILE_OPEN, RAISED_WHILE_OPEN),
    ],
)
@pytest.mark.parametrize("server", REAL)
def test_the_warning_names_the_close_code_each_server_gives(
    behaviour: Behaviour, measured: dict[str, int], server: str
) -> None:
    assert str(measured[server]) in getattr(behaviour.value, family(server))
