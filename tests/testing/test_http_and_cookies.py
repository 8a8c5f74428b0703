"""Plain HTTP beside the websockets, on one client with one cookie jar, as a browser has."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from panther_ws_testing import SyncWebsocketTestClient, WebsocketTestClient
from tests.testing.apps import http_and_ws_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_http_requests_reach_the_app_with_the_lifespan_state() -> None:
    async with WebsocketTestClient(http_and_ws_app) as client:
        response = await client.get("/state")
        assert isinstance(response, httpx.Response)
        assert (response.status_code, response.text) == (200, "hello from lifespan")
        assert str(response.url) == "http://testserver/state"
        assert (await client.request("GET", "/nothing")).status_code == 404
        assert (await client.post("/login", content=b"ann")).text == "welcome"


async def test_a_cookie_from_an_http_login_goes_with_the_websocket_connect(wire: bool) -> None:
    async with WebsocketTestClient(http_and_ws_app, wire=wire) as client:
        await client.post("/login", content=b"ann")
        assert client.cookies["session"] == "ann"
        assert (await client.get("/whoami")).text == "session=ann"
        async with client.connect("/whoami") as ws:
            assert await ws.receive() == "session=ann"


async def test_cookies_given_to_the_client_are_sent_unless_the_test_sets_the_header(
    wire: bool,
) -> None:
    async with WebsocketTestClient(http_and_ws_app, wire=wire, cookies={"a": "1"}) as client:
        async with client.connect("/whoami") as ws:
            assert await ws.receive() == "a=1"
        async with client.connect("/whoami", headers={"Cookie": "mine=2"}) as ws:
            assert await ws.receive() == "mine=2"
        client.cookies = {"b": "3"}
        assert (await client.get("/whoami")).text == "b=3"
        async with client.connect("/whoami") as ws:
            assert await ws.receive() == "b=3"


async def test_an_http_request_the_app_never_answers_times_out() -> None:
    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await anyio.sleep_forever()

    async with WebsocketTestClient(silent, timeout=0.2) as client:
        with pytest.raises(TimeoutError, match=r"did not answer GET /slow within 0\.2 s"):
            await client.get("/slow")


async def test_http_before_entering_the_client_is_an_error() -> None:
    client = WebsocketTestClient(http_and_ws_app)
    with pytest.raises(RuntimeError, match="async with WebsocketTestClient"):
        await client.get("/state")


def test_the_sync_client_has_http_and_the_same_jar() -> None:
    with SyncWebsocketTestClient(http_and_ws_app) as client:
        assert client.get("/state").text == "hello from lifespan"
        assert client.post("/login", content=b"bob").status_code == 200
        assert client.cookies["session"] == "bob"
        with client.connect("/whoami") as ws:
            assert ws.receive() == "session=bob"
