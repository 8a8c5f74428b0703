"""httpx-ws users keep their API: aconnect_ws over our ASGIWebsocketTransport."""

from __future__ import annotations

import httpx
import pytest
from httpx_ws import WebSocketUpgradeError, aconnect_ws

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
