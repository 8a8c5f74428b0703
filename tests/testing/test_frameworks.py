"""The harness tests apps written with Starlette and with Panther itself."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from panther_ws_testing import ReceiveTimeout, WebsocketRejected, WebsocketTestClient
from panther_ws_testing._differences import ServerDifferenceWarning

pytestmark = pytest.mark.anyio

DISCONNECTS: list[int] = []


async def starlette_echo(websocket: WebSocket) -> None:
    if websocket.query_params.get("token") != "ok":
        await websocket.close(code=1008, reason="token")
        return
    await websocket.accept(
        subprotocol="chat" if "chat" in websocket.scope["subprotocols"] else None
    )
    try:
        while True:
            await websocket.send_text(
                f"{websocket.path_params['room']}: {await websocket.receive_text()}"
            )
    except WebSocketDisconnect as disconnect:
        DISCONNECTS.append(disconnect.code)


async def starlette_silent(websocket: WebSocket) -> None:
    await websocket.receive()  # the connect message
    await websocket.receive()  # never accepts: Starlette's TestClient hangs here forever


starlette_app = Starlette(
    routes=[
        WebSocketRoute("/ws/{room}", starlette_echo),
        WebSocketRoute("/silent", starlette_silent),
    ]
)


@pytest.mark.parametrize("wire", [False, True], ids=["direct", "wire"])
async def test_starlette_app(wire: bool) -> None:
    DISCONNECTS.clear()
    async with WebsocketTestClient(starlette_app, wire=wire) as client:
        async with client.connect("/ws/lobby?token=ok", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("hi")
            assert await ws.receive() == "lobby: hi"
            await ws.close(1001)
            assert DISCONNECTS == [1001]  # no sleep needed: close() waited for the app
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/ws/lobby"):
                pass
        assert (rejected.value.code, rejected.value.reason) == (1008, "token")


async def test_a_silent_starlette_app_times_out_instead_of_hanging() -> None:
    async with WebsocketTestClient(starlette_app, timeout=0.2) as client:
        with pytest.raises(ReceiveTimeout):
            async with client.connect("/silent"):
                pass


def _panther_app() -> object:
    from panther import Panther
    from panther.websocket import GenericWebsocket as PantherWebsocket

    # No annotations: Panther reads connect()'s annotations as classes, and this module's
    # `from __future__ import annotations` would turn them into strings.
    class PantherEcho(PantherWebsocket):
        async def connect(self, **kwargs):
            await self.accept()

        async def receive(self, data):
            await self.send(data)

    return Panther(__name__, configs=__name__, urls={"ws/echo/": PantherEcho})


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # Panther itself runs on asyncio only
async def test_panther_app(anyio_backend: str) -> None:
    app = _panther_app()
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/echo/") as ws:
            await ws.send("from a panther test")
            assert await ws.receive() == "from a panther test"


@pytest.mark.parametrize("wire", [False, True], ids=["direct", "wire"])
async def test_fastapi_query_validation_rejection_is_a_403_keeping_its_reason(
    wire: bool,
) -> None:
    fastapi_app = FastAPI()

    @fastapi_app.websocket("/items")
    async def items(websocket: FastAPIWebSocket, token: str) -> None:
        await websocket.accept()
        await websocket.send_text(token)
        await websocket.close()

    async with WebsocketTestClient(fastapi_app, wire=wire) as client:
        async with client.connect("/items?token=t") as ws:
            assert await ws.receive() == "t"
        with pytest.warns(ServerDifferenceWarning), pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/items"):
                pass
    assert (rejected.value.status_code, rejected.value.code) == (403, 1008)
    assert isinstance(rejected.value.reason, list)
    assert rejected.value.reason[0]["loc"] == ["query", "token"]
