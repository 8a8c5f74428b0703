"""Plain HTTP on the reference server: an app's ``http`` scope, reached with httpx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from panther_ws import App, GenericWebsocket
from panther_ws.client import connect
from tests.network import apps
from tests.network.certs import client_context, self_signed, server_context
from tests.network.test_server_and_client import running

pytestmark = pytest.mark.anyio


async def _page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    headers = [(b"content-type", b"text/html")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"<h1>hello</h1>"})


class Echo(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        await self.send(data)


async def test_an_apps_fallback_page_and_its_websocket_share_the_port() -> None:
    async with running(App({"ws/": Echo}, fallback=_page)) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            response = await http.get("/")
        assert (response.status_code, response.text) == (200, "<h1>hello</h1>")
        assert response.headers["content-type"] == "text/html"
        assert response.headers["connection"] == "close"
        async with connect(f"ws://127.0.0.1:{server.port}/ws/") as ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"


async def test_the_scope_is_what_the_request_said() -> None:
    async with running(apps.http_app) as server:
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"http://127.0.0.1:{server.port}/scope/a%20b?x=1&y=2", headers={"X-Token": "t"}
            )
    scope = response.json()
    assert scope["method"] == "GET"
    assert (scope["path"], scope["raw_path"]) == ("/scope/a b", "/scope/a%20b")
    assert scope["query_string"] == "x=1&y=2"
    assert (scope["http_version"], scope["scheme"], scope["client"]) == ("1.1", "http", "127.0.0.1")
    assert scope["headers"]["x-token"] == "t"


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_a_body_reaches_the_app_as_it_streams() -> None:
    async with running(apps.http_app) as server:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"http://127.0.0.1:{server.port}/body", content=_chunks(8, 20_000)
            )
    body = response.json()
    assert body["received"] == 160_000
    assert body["messages"] > 2  # several http.request messages, not one buffered body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_max_body_size_gets_413(framing: str) -> None:
    content = b"x" * 300_000 if framing == "content-length" else _chunks(30, 10_000)
    async with running(apps.http_app, max_body_size=100_000) as server:
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{server.port}/body"
            response = await http.post(url, content=content)
            assert response.status_code == 413
            small = await http.post(url, content=b"x" * 100_000)
    assert small.json()["received"] == 100_000


@pytest.mark.parametrize("path", ["/raise", "/raise/KeyboardInterrupt", "/silent"])
async def test_an_app_that_fails_or_never_answers_gets_500_and_the_server_goes_on(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(apps.http_app) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.get(path)
            assert (response.status_code, response.text) == (500, "Internal Server Error")
            assert (await http.get("/body")).status_code == 200
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    expected = "without completing" if path == "/silent" else "exception in the ASGI app"
    assert expected in errors[0].getMessage()


async def test_head_gets_the_headers_without_the_body() -> None:
    async with running(apps.http_app) as server:
        async with httpx.AsyncClient() as http:
            response = await http.head(f"http://127.0.0.1:{server.port}/body")
    assert (response.status_code, response.content) == (200, b"")


async def test_a_broken_upgrade_request_still_gets_the_handshakes_answer() -> None:
    async with running(apps.http_app) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
            response = await stream.receive()
        assert response.startswith(b"HTTP/1.1 426 ")


async def test_max_connections_counts_http_requests_too() -> None:
    async with running(apps.http_app, max_connections=1) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/echo"):
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{server.port}/body")
    assert response.status_code == 503


async def test_tls_serves_https_and_wss(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with running(apps.http_app, ssl=server_context(cert, key)) as server:
        async with httpx.AsyncClient(verify=client_context(cert)) as http:
            response = await http.get(f"https://127.0.0.1:{server.port}/scope")
        assert response.json()["scheme"] == "https"
        url = f"wss://127.0.0.1:{server.port}/echo"
        async with connect(url, ssl=client_context(cert)) as ws:
            await ws.send("secret")
            assert await ws.receive() == "secret"


async def test_an_http_1_0_request_is_served() -> None:
    async with running(apps.http_app) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            await stream.send(b"GET /scope HTTP/1.0\r\n\r\n")
            response = b""
            with anyio.fail_after(5):
                while chunk := await _receive_or_end(stream):
                    response += chunk
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b'"http_version":"1.0"' in response


async def test_a_body_that_stops_coming_ends_the_request() -> None:
    async with running(apps.http_app, handshake_timeout=0.2) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)  # type: ignore[arg-type]
        async with stream:
            await stream.send(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
            with anyio.fail_after(5):  # the server lets go instead of waiting for ever
                while await _receive_or_end(stream):
                    pass


async def _receive_or_end(stream: anyio.abc.ByteStream) -> bytes:
    try:
        return await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return b""
