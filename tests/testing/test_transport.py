"""httpx-ws users keep their API: aconnect_ws over our ASGIWebsocketTransport."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from httpx_ws import WebSocketUpgradeError, aconnect_ws

from panther_ws_testing import AppCrashed, AppIgnoredCancellation
from panther_ws_testing.transport import ASGIWebsocketTransport
from tests.testing.apps import echo_app

pytestmark = pytest.mark.anyio


async def test_httpx_ws_echo_through_real_frames() -> None:
    transport = ASGIWebsocketTransport(echo_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        async with aconnect_ws("/echo", client) as ws:
            await ws.send_text("hello")
            assert await ws.receive_text() == "hello"
            await ws.send_bytes(b"\x00\x01")
            assert await ws.receive_bytes() == b"\x00\x01"


async def test_two_concurrent_connections_keep_their_own_scope() -> None:
    transport = ASGIWebsocketTransport(echo_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        async with (
            aconnect_ws("/scope?who=a", client) as a,
            aconnect_ws("/scope?who=b", client) as b,
        ):
            assert "who=b" in await b.receive_text()
            assert "who=a" in await a.receive_text()


async def test_a_rejection_is_an_upgrade_error_with_403() -> None:
    transport = ASGIWebsocketTransport(echo_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with pytest.raises(WebSocketUpgradeError) as error:
            async with aconnect_ws("/reject", client):
                pass
        assert error.value.response.status_code == 403


async def test_the_app_exception_keeps_its_type() -> None:
    transport = ASGIWebsocketTransport(echo_app)
    with pytest.raises(LookupError, match="crashed before accept"):
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            async with aconnect_ws("/crash-before-accept", client):
                pass


async def test_plain_http_goes_to_the_app() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    transport = ASGIWebsocketTransport(Starlette(routes=[Route("/", hello)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/")).text == "hello"


async def test_the_transport_may_be_entered_by_the_test_and_by_the_client() -> None:
    transport = ASGIWebsocketTransport(echo_app)
    for _ in range(2):  # and entered again once closed
        async with transport:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                async with aconnect_ws("/echo", c) as ws:
                    await ws.send_text("twice")
                    assert await ws.receive_text() == "twice"
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                async with aconnect_ws("/echo", c) as ws:  # still open for a second client
                    await ws.send_text("again")
                    assert await ws.receive_text() == "again"


async def test_leaving_the_transport_more_often_than_entering_it_is_an_error() -> None:
    transport = ASGIWebsocketTransport(echo_app)
    async with transport:
        pass
    with pytest.raises(RuntimeError, match="exited more often than it was entered"):
        await transport.__aexit__()


async def test_a_keyboard_interrupt_in_the_app_fails_only_the_test() -> None:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        raise KeyboardInterrupt

    transport = ASGIWebsocketTransport(app)
    with pytest.raises(AppCrashed) as crashed:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            async with aconnect_ws("/", client):
                pass
    assert type(crashed.value.__cause__) is KeyboardInterrupt


async def test_an_app_that_keeps_swallowing_cancellation_is_abandoned() -> None:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            try:
                await anyio.sleep(0.01)
            except anyio.get_cancelled_exc_class():
                pass

    transport = ASGIWebsocketTransport(app, timeout=0.2)
    with pytest.raises(AppIgnoredCancellation, match="the app for '/stuck' did not finish"):
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            async with aconnect_ws("/stuck", client):
                pass
