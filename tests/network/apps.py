"""ASGI apps served over real sockets in the network tests."""

from __future__ import annotations

from typing import Any

import anyio

SENT: list[int] = []


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    assert scope["type"] == "websocket"
    await receive()
    path = scope["path"]
    if path == "/reject":
        await send({"type": "websocket.close", "code": 1008, "reason": "no"})
        return
    if path == "/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"x-why", b"token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no token"})
        return
    subprotocols = scope["subprotocols"]
    await send(
        {"type": "websocket.accept", "subprotocol": subprotocols[0] if subprotocols else None}
    )
    if path == "/flood":
        SENT.clear()
        for index in range(2000):
            await send({"type": "websocket.send", "bytes": b"x" * 65536})
            SENT.append(index)
    if path == "/busy":
        await anyio.sleep(30)  # never reads: the server must still answer pings and the close
    if path == "/kick":
        await send({"type": "websocket.close", "code": 4001, "reason": "kicked"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        payload = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
        await send({"type": "websocket.send", **payload})
