"""What one connect reuses from the last (its settings, its parsed request) and what it must not.

A connect costs little because the client keeps its session settings and each distinct
upgrade request between connects, and skips what has nothing to do (no headers, an empty
jar, an app that accepts at once). These pin that nothing a test can observe is shared: a
setting changed on an open client holds from the next connect, every scope is the session's
own, and an app slower than one scheduling round is still waited for, within the timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from panther_ws_testing import ReceiveTimeout, WebsocketTestClient
from tests.testing.apps import echo_app, http_and_ws_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def scope_spoiler(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reports its scope's mutable parts as it got them, then spoils every one of them."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept", "subprotocol": "chat"})
    seen = (scope["headers"][:], scope["subprotocols"][:], dict(scope["state"]))
    await send({"type": "websocket.send", "text": repr(seen)})
    scope["headers"].append((b"x-spoiled", b"yes"))
    scope["subprotocols"].append("spoiled")
    scope["state"]["spoiled"] = True
    scope["client"][1] = 0
    scope["extensions"]["spoiled"] = {}
    await receive()


async def slow_acceptor(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts after a few scheduling rounds and a real sleep: later than a connect looks.

    On ``/with`` it accepts at once with a subprotocol and a header, elsewhere plainly.
    """
    if scope["type"] != "websocket":
        return
    await receive()
    if scope["path"] == "/with":
        accept = {"subprotocol": "chat", "headers": [(b"x-with", b"1")]}
    else:
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        await anyio.sleep(0.02)
        accept = {}
    await send({"type": "websocket.accept", **accept})
    await receive()


async def test_every_session_gets_its_own_scope_on_the_same_request(wire: bool) -> None:
    async with WebsocketTestClient(scope_spoiler, wire=wire) as client:
        seen = []
        for _ in range(2):
            async with client.connect("/same", headers={"X-A": "1"}, subprotocols=["chat"]) as ws:
                seen.append(await ws.receive_text())
    for report in seen:  # the second session saw none of what the first app spoiled
        assert "spoiled" not in report
        assert "(b'x-a', b'1')" in report


async def test_no_list_or_dict_of_a_scope_is_another_sessions(wire: bool) -> None:
    scopes: list[dict[str, Any]] = []

    async def keeper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scopes.append(scope)
            await receive()
            await send({"type": "websocket.accept"})
            await receive()

    async with WebsocketTestClient(keeper, wire=wire, lifespan="off") as client:
        for _ in range(2):
            async with client.connect("/same?q=1", headers={"X-A": "1"}, subprotocols=["c"]):
                pass
    first, second = (set(_containers(scope)) for scope in scopes)
    assert len(first) >= 8  # the scope, asgi, headers, subprotocols, client, server, ...
    assert not first & second


def _containers(value: object) -> Iterator[int]:
    """The ids of every list and dict in ``value``, itself included."""
    if isinstance(value, dict):
        yield id(value)
        for item in value.values():
            yield from _containers(item)
    elif isinstance(value, list):
        yield id(value)
        for item in value:
            yield from _containers(item)


async def test_a_setting_changed_on_an_open_client_holds_from_the_next_connect() -> None:
    async with WebsocketTestClient(echo_app) as client:
        async with client.connect("/echo") as ws:
            with pytest.raises(RuntimeError, match="wire=True"):
                ws.pause_reading()
        client.wire = True
        async with client.connect("/echo") as ws:
            ws.pause_reading()  # a wire session now
            ws.resume_reading()
        client.timeout = 0.05
        with anyio.fail_after(2), pytest.raises(ReceiveTimeout, match=r"waited 0\.05 s"):
            async with client.connect("/silent"):
                pass


async def test_connect_outside_the_client_is_refused_before_and_after() -> None:
    client = WebsocketTestClient(echo_app)
    with pytest.raises(RuntimeError, match="async with WebsocketTestClient"):
        client.connect("/echo")
    async with client:
        async with client.connect("/echo") as ws:
            await ws.send("still open")
            assert await ws.receive() == "still open"
    with pytest.raises(RuntimeError, match="async with WebsocketTestClient"):
        client.connect("/echo")


async def test_a_cookie_set_in_the_jar_goes_with_the_next_connect(wire: bool) -> None:
    async with WebsocketTestClient(http_and_ws_app, wire=wire) as client:
        async with client.connect("/whoami") as ws:
            assert await ws.receive_text() == ""  # an empty jar: no cookie header at all
        client.cookies.set("session", "ann")  # the same jar, filled in place
        async with client.connect("/whoami") as ws:
            assert await ws.receive_text() == "session=ann"


async def test_an_app_slower_than_one_round_is_waited_for_within_the_timeout(wire: bool) -> None:
    async with WebsocketTestClient(slow_acceptor, wire=wire, timeout=2) as client:
        with anyio.fail_after(3):
            async with client.connect("/") as ws:
                assert ws.accepted
    async with WebsocketTestClient(slow_acceptor, wire=wire, timeout=0.005) as client:
        with anyio.fail_after(2), pytest.raises(ReceiveTimeout, match="to accept"):
            async with client.connect("/"):
                pass


async def test_a_plain_accept_after_one_with_headers_has_none(wire: bool) -> None:
    async with WebsocketTestClient(slow_acceptor, wire=wire) as client:
        async with client.connect("/with", subprotocols=["chat"]) as ws:
            assert (ws.subprotocol, ws.response_headers[-1]) == ("chat", (b"x-with", b"1"))
        for _ in range(2):
            async with client.connect("/plain") as ws:
                assert ws.subprotocol is None
                assert b"x-with" not in dict(ws.response_headers)
                ws.response_headers.append((b"x-test", b"mine"))  # the session's own list
