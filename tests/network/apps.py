"""ASGI apps served over real sockets in the network tests, and a server that never answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import orjson

from panther_ws.protocol import ConnectionState, ServerConnection
from panther_ws.protocol.events import Request

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
    if path == "/whoami":
        headers = dict(scope["headers"])
        await send({"type": "websocket.send", "text": headers.get(b"x-token", b"").decode()})
    if path == "/kick":
        await send({"type": "websocket.close", "code": 4001, "reason": "kicked"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        payload = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
        await send({"type": "websocket.send", **payload})


class AppBaseException(BaseException):
    """Neither an ``Exception`` nor anything the runtime knows about."""


async def _awaits_a_cancelled_task() -> None:
    """The common accident: awaiting a task someone cancelled raises ``CancelledError``."""
    task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    task.cancel()
    await task


def _raises(exception: BaseException) -> Callable[[], Any]:
    async def raise_it() -> None:
        raise exception

    return raise_it


RAISERS: dict[str, Callable[[], Any]] = {
    "CancelledError": _raises(asyncio.CancelledError()),
    "KeyboardInterrupt": _raises(KeyboardInterrupt()),
    "SystemExit": _raises(SystemExit(3)),
    "AppBaseException": _raises(AppBaseException("mine")),
    "awaited-cancelled-task": _awaits_a_cancelled_task,  # asyncio only
}


async def raising_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The echo app, except on ``/raise/<RAISERS key>/before`` (or ``after``) accepting."""
    if scope["type"] != "websocket" or not scope["path"].startswith("/raise/"):
        return await echo_app(scope, receive, send)
    _, _, name, when = scope["path"].split("/")
    await receive()
    if when == "after":
        await send({"type": "websocket.accept"})
        await receive()  # the client's message
    await RAISERS[name]()


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The echo app for websockets; plain HTTP on a few paths, as an App's fallback would."""
    if scope["type"] != "http":
        return await echo_app(scope, receive, send)
    path = scope["path"]
    if path == "/raise":
        raise RuntimeError("the app broke")
    if path.startswith("/raise/"):
        await RAISERS[path.removeprefix("/raise/")]()
    if path == "/silent":
        return
    chunks: list[int] = []
    while True:
        message = await receive()
        chunks.append(len(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    if path.startswith("/scope"):
        keys = ("method", "path", "raw_path", "query_string", "http_version", "scheme")
        body = orjson.dumps(
            {
                **{key: scope[key] for key in keys},
                "headers": {name.decode(): value.decode() for name, value in scope["headers"]},
                "client": scope["client"][0],
            },
            default=lambda value: value.decode(),
        )
    else:
        body = orjson.dumps({"received": sum(chunks), "messages": len(chunks)})
    start = {"type": "http.response.start", "status": 200}
    await send({**start, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body[:5], "more_body": True})
    await send({"type": "http.response.body", "body": body[5:]})


async def websocket_only_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app that knows nothing of lifespan, as many do: it asserts its scope."""
    assert scope["type"] == "websocket", f"cannot serve {scope['type']!r}"
    await echo_app(scope, receive, send)


@contextlib.asynccontextmanager
async def deaf_server() -> AsyncIterator[int]:
    """A server that accepts the upgrade, then reads and ignores everything, the close too."""

    async def serve(stream: anyio.abc.SocketStream) -> None:
        core = ServerConnection()
        async with stream:
            while core.state is ConnectionState.CONNECTING:
                core.receive_data(await stream.receive())
                for event in core.events():
                    if isinstance(event, Request):
                        core.accept()
            await stream.send(core.data_to_send())
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    await stream.receive()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, serve)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        task_group.cancel_scope.cancel()
