"""A websocket-only app that raises on the lifespan scope, as a bare Channels ``URLRouter``.

Kept apart from :mod:`tests.hosting.apps` so that a server process serving it starts
without importing FastAPI.
"""

from __future__ import annotations

from panther_ws.hosting.types import Receive, Scope, Send


async def raising_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        raise ValueError(f"No route found for path {scope.get('path', '')!r}.")
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text")})
