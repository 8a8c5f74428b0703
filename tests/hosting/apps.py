"""Raw ASGI apps, one per behaviour, that every embedder and every real server hosts.

``app`` dispatches by path to :data:`BEHAVIOURS`, so one server process (``panther-ws
serve``, uvicorn, hypercorn) serves the whole suite; ``/fastapi/...`` and ``/starlette/...``
go to a FastAPI and a Starlette app, as a user's tests would reach them. The lifespan of
``app`` puts ``{"db": "ready"}`` in the state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.exceptions import WebSocketException
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from panther_ws.hosting.types import Receive, Scope, Send

Behaviour = Callable[[Scope, Receive, Send], Awaitable[None]]

LONG_REASON = "x" * 124  # one byte over what a close frame can carry
DENIAL_BODY = b"no token"

# What an app saw that its client cannot (how its connection ended, whether a send raised),
# under the connection's query string: a second connection to /seen?<key> reads it, so the
# client side is all a test needs, on any server.
SEEN: dict[str, Any] = {}


class HandlerError(RuntimeError):
    """What the raising behaviours raise: a test checks it arrives with its own type."""


class Interrupted(BaseException):
    """A ``BaseException`` that is not an ``Exception``, like ``KeyboardInterrupt``.

    ``KeyboardInterrupt`` itself would stop an asyncio server's loop from inside a task
    (asyncio re-raises it there), which is a signal's job, not an app's.
    """


async def _accept(send: Send, **fields: Any) -> None:
    await send({"type": "websocket.accept", **fields})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def return_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def raise_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise HandlerError("before accept")


async def return_while_open(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)


async def send_then_return(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await send({"type": "websocket.send", "text": "hi"})


async def raise_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await send({"type": "websocket.send", "text": "hi"})
    await receive()  # the client's "go": the handler raises while handling a message
    raise HandlerError("after accept")


async def cancelled_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await receive()
    raise asyncio.CancelledError  # a bare one, not the backend cancelling the app


async def interrupted_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await receive()
    raise Interrupted


async def reject(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 4001, "reason": "nope"})


async def reject_without_code(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def reject_with_list_reason(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 1008, "reason": [{"loc": ["token"]}]})


async def reject_with_unsendable_close(scope: Scope, receive: Receive, send: Send) -> None:
    """A code an app may not send and a reason over 123 bytes: no close frame holds them."""
    await receive()
    await send({"type": "websocket.close", "code": 1006, "reason": LONG_REASON})


async def deny(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"x-why", b"token"), (b"content-type", b"text/plain")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": DENIAL_BODY})


async def close_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await send({"type": "websocket.close", "code": 4001, "reason": "kicked"})
    await _wait_for_disconnect(receive)


async def close_without_code(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await send({"type": "websocket.close"})
    await _wait_for_disconnect(receive)


async def close_with_list_reason(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await _send_and_see(
        scope, send, {"type": "websocket.close", "code": 4002, "reason": ["not", "a", "str"]}
    )
    await _wait_for_disconnect(receive)


async def close_with_long_reason(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await _send_and_see(
        scope, send, {"type": "websocket.close", "code": 4003, "reason": LONG_REASON}
    )
    await _wait_for_disconnect(receive)


async def _send_and_see(scope: Scope, send: Send, message: dict[str, Any]) -> None:
    """Sends ``message``; records under the query string what the send raised, if anything."""
    try:
        await send(message)
    except Exception as exc:
        SEEN[scope["query_string"].decode()] = type(exc).__name__
        raise
    SEEN[scope["query_string"].decode()] = "sent"


async def send_after_close(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    await send({"type": "websocket.close", "code": 4004, "reason": "done"})
    await _send_and_see(scope, send, {"type": "websocket.send", "text": "late"})


async def subprotocol(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    offered = scope["subprotocols"]
    await _accept(send, subprotocol=offered[-1] if offered else None)
    await send({"type": "websocket.send", "text": orjson.dumps(offered).decode()})
    await _wait_for_disconnect(receive)


async def accept_headers(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send, headers=[(b"x-answer", b"42"), (b"set-cookie", b"session=abc")])
    await _wait_for_disconnect(receive)


async def request(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends back what the app can see of the request, as JSON."""
    await receive()
    await _accept(send)
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    seen = {
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode(),
        "query_string": scope["query_string"].decode(),
        "x-token": headers.get("x-token"),
        "scheme": scope["scheme"],
        "type": scope["type"],
        "state": dict(scope.get("state", {})),
    }
    await send({"type": "websocket.send", "text": orjson.dumps(seen).decode()})
    await _wait_for_disconnect(receive)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        data = {k: message[k] for k in ("text", "bytes") if message.get(k) is not None}
        await send({"type": "websocket.send", **data})


async def record_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    message = await receive()
    while message["type"] != "websocket.disconnect":
        message = await receive()
    SEEN[scope["query_string"].decode()] = [message["code"], message.get("reason")]


async def seen(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _accept(send)
    key = scope["query_string"].decode()
    await send({"type": "websocket.send", "text": orjson.dumps(SEEN.get(key)).decode()})
    await _wait_for_disconnect(receive)


BEHAVIOURS: dict[str, Behaviour] = {
    f"/{function.__name__.replace('_', '-')}": function
    for function in (
        return_before_accept,
        raise_before_accept,
        return_while_open,
        send_then_return,
        raise_after_accept,
        cancelled_after_accept,
        interrupted_after_accept,
        reject,
        reject_without_code,
        reject_with_list_reason,
        reject_with_unsendable_close,
        deny,
        close_after_accept,
        close_without_code,
        close_with_list_reason,
        close_with_long_reason,
        send_after_close,
        subprotocol,
        accept_headers,
        request,
        echo,
        record_disconnect,
        seen,
    )
}

fastapi_app = FastAPI()


@fastapi_app.websocket("/fastapi/items")
async def fastapi_items(websocket: WebSocket, token: int) -> None:
    """A required query parameter: without it FastAPI rejects with its validation errors."""
    await websocket.accept()
    await websocket.send_text(f"token {token}")
    await websocket.close()


async def _starlette_echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept(subprotocol="chat")
    text = await websocket.receive_text()
    await websocket.send_text(f"starlette: {text}")
    await websocket.close(code=4005, reason="bye")


async def _starlette_refuse(websocket: StarletteWebSocket) -> None:
    raise WebSocketException(code=4006, reason="not here")


starlette_app = Starlette(
    routes=[
        WebSocketRoute("/starlette/echo", _starlette_echo),
        WebSocketRoute("/starlette/refuse", _starlette_refuse),
    ]
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Every behaviour behind one app, so one server process serves the suite."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "ready"
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path: str = scope["path"]
    if path.startswith("/fastapi/"):
        await fastapi_app(scope, receive, send)
    elif path.startswith("/starlette/"):
        await starlette_app(scope, receive, send)
    else:
        await BEHAVIOURS[path](scope, receive, send)
