"""The test client and the httpx transport give the host's one answer per app behaviour."""

from __future__ import annotations

import re
import warnings
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws

from panther_ws.protocol.asgi import ASGIProtocolError
from panther_ws_testing import (
    WebsocketClosed,
    WebsocketRejected,
    WebsocketTestClient,
    WebsocketTestSession,
)
from panther_ws_testing._differences import Behaviour, ServerDifferenceWarning
from panther_ws_testing.transport import ASGIWebsocketTransport
from tests.testing.apps import raises_while_open, returns_while_open

pytestmark = pytest.mark.anyio


def _said(behaviour: Behaviour) -> str:
    return re.escape(behaviour.value.message)


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def returns_before_accept(scope: Any, receive: Any, send: Any) -> None:
    await receive()


async def accepts_sends_closes(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    for number in range(3):
        await send({"type": "websocket.send", "text": str(number)})
    await send({"type": "websocket.close", "code": 4001, "reason": "bye"})


async def test_an_app_that_returns_while_open_closes_with_1000_and_a_warning(wire: bool) -> None:
    async def converse(client: WebsocketTestClient) -> None:
        async with client.connect("/") as ws:
            assert await ws.receive() == "hi"
            assert await ws.wait_closed() == (1000, "")

    async with WebsocketTestClient(returns_while_open, lifespan="off", wire=wire) as client:
        with pytest.warns(ServerDifferenceWarning, match=_said(Behaviour.RETURNED_WHILE_OPEN)):
            await converse(client)


async def test_an_app_that_raises_while_open_closes_1011_and_the_error_keeps_its_type(
    wire: bool,
) -> None:
    async def converse(client: WebsocketTestClient) -> WebsocketTestSession:
        async with client.connect("/") as ws:
            await ws.send("go")
            with pytest.raises(LookupError, match="after accept"):
                await ws.wait_closed()
        return ws

    async with WebsocketTestClient(raises_while_open, lifespan="off", wire=wire) as client:
        with pytest.warns(ServerDifferenceWarning, match=_said(Behaviour.RAISED_WHILE_OPEN)):
            ws = await converse(client)
    assert ws.close_code == 1011


async def test_an_app_that_returns_before_accept_is_http_500(wire: bool) -> None:
    async with WebsocketTestClient(returns_before_accept, lifespan="off", wire=wire) as client:
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/"):
                pass
    assert rejected.value.status_code == 500
    assert rejected.value.code is None


async def test_leaving_right_after_the_app_accepted_never_races_its_sends(wire: bool) -> None:
    """The app's sends before its next receive() complete; it sees the close there."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "one"})
        await send({"type": "websocket.send", "text": "two"})
        seen.append(await receive())

    async with WebsocketTestClient(app, lifespan="off", wire=wire) as client:
        for _ in range(20):
            seen.clear()
            async with client.connect("/"):
                pass
            assert seen == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


async def test_a_starlette_app_that_accepts_sends_and_closes_passes_when_left_at_once(
    wire: bool,
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("welcome")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/", endpoint)])
    async with WebsocketTestClient(app, lifespan="off", wire=wire) as client:
        for _ in range(20):
            async with client.connect("/"):
                pass


async def test_the_app_sees_the_close_only_on_its_next_receive(wire: bool) -> None:
    async with WebsocketTestClient(accepts_sends_closes, lifespan="off", wire=wire) as client:
        async with client.connect("/") as ws:
            assert [await ws.receive() for _ in range(3)] == ["0", "1", "2"]
            assert await ws.wait_closed() == (4001, "bye")


async def test_a_list_as_close_reason_before_accept_is_a_403_with_a_warning(wire: bool) -> None:
    errors = [{"loc": ["query", "token"], "msg": "Field required"}]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": errors})

    async def converse(client: WebsocketTestClient) -> None:
        async with client.connect("/"):
            pass

    async with WebsocketTestClient(app, lifespan="off", wire=wire) as client:
        with (
            pytest.warns(ServerDifferenceWarning, match=_said(Behaviour.NON_STR_CLOSE_REASON)),
            pytest.raises(WebsocketRejected) as rejected,
        ):
            await converse(client)
    assert rejected.value.status_code == 403
    assert (rejected.value.code, rejected.value.reason) == (1008, errors)


async def test_strict_makes_a_tolerated_violation_an_error(wire: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": ["a list"]})

    with pytest.raises(WebsocketRejected) as rejected:
        async with WebsocketTestClient(app, lifespan="off", wire=wire, strict=True) as client:
            async with client.connect("/"):
                pass
    assert rejected.value.status_code == 500
    assert isinstance(rejected.value.__cause__, ASGIProtocolError)
    assert "reason of type list" in str(rejected.value.__cause__)


async def test_a_list_as_close_reason_after_accept_is_always_an_error(wire: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1008, "reason": ["a list"]})

    async with WebsocketTestClient(app, lifespan="off", wire=wire) as client:
        with pytest.raises(ASGIProtocolError, match="reason of type list"):
            async with client.connect("/") as ws:
                await ws.receive()


async def test_a_close_with_a_code_and_reason_arrives_without_a_warning(wire: bool) -> None:
    async with WebsocketTestClient(accepts_sends_closes, lifespan="off", wire=wire) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ServerDifferenceWarning)
            async with client.connect("/") as ws:
                await ws.wait_closed()
    assert (ws.close_code, ws.close_reason) == (4001, "bye")


# -- the httpx transport ---------------------------------------------------------------------


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=ASGIWebsocketTransport(app), base_url="http://testserver")


async def test_transport_an_app_that_returns_before_accept_is_an_upgrade_error_500() -> None:
    async with _client(returns_before_accept) as client:
        with pytest.raises(WebSocketUpgradeError) as error:
            async with aconnect_ws("/", client):
                pass
    assert error.value.response.status_code == 500


async def test_transport_an_app_that_returns_while_open_closes_with_1000() -> None:
    async with _client(returns_while_open) as client:
        async with aconnect_ws("/", client) as ws:
            assert await ws.receive_text() == "hi"
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
    assert closed.value.code == 1000


async def test_transport_an_exception_after_accept_is_1011_then_raised_with_its_type() -> None:
    with pytest.raises(LookupError, match="after accept"):
        async with _client(raises_while_open) as client:
            async with aconnect_ws("/", client) as ws:
                await ws.send_text("go")
                with pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive_text()
                assert closed.value.code == 1011


async def test_transport_a_close_with_a_code_and_reason_arrives_as_sent() -> None:
    async with _client(accepts_sends_closes) as client:
        async with aconnect_ws("/", client) as ws:
            assert [await ws.receive_text() for _ in range(3)] == ["0", "1", "2"]
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4001, "bye")


async def test_transport_a_list_reason_before_accept_is_a_403() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": ["a list"]})

    async with _client(app) as client:
        with pytest.raises(WebSocketUpgradeError) as error:
            async with aconnect_ws("/", client):
                pass
    assert error.value.response.status_code == 403


async def test_the_session_raises_websocket_closed_after_the_app_returned(wire: bool) -> None:
    async def converse(client: WebsocketTestClient) -> None:
        async with client.connect("/") as ws:
            await ws.receive()
            await ws.receive()

    async with WebsocketTestClient(returns_while_open, lifespan="off", wire=wire) as client:
        with pytest.warns(ServerDifferenceWarning), pytest.raises(WebsocketClosed) as closed:
            await converse(client)
    assert closed.value.code == 1000
