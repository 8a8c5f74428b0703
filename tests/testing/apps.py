"""Plain ASGI apps the harness tests drive: no framework, so every behaviour is explicit."""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    """Echoes; the path picks a behaviour: /reject, /deny, /silent, /kick, /crash-*."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/reject":
        await send({"type": "websocket.close", "code": 1008, "reason": "go away"})
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
    if path == "/crash-before-accept":
        raise LookupError("crashed before accept")
    if path == "/silent":
        await receive()  # never accepts: waits until the client gives up
        return
    subprotocols = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocols[0] if subprotocols else None,
            "headers": [(b"x-path", path.encode())],
        }
    )
    if path == "/kick":
        await send({"type": "websocket.close", "code": 4001, "reason": "kicked"})
        assert (await receive())["type"] == "websocket.disconnect"
        return
    if path == "/scope":
        await send(
            {
                "type": "websocket.send",
                "text": repr(
                    (scope["query_string"], dict(scope["headers"]).get(b"x-token"), scope["state"])
                ),
            }
        )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            scope["state"].setdefault("disconnects", []).append(message["code"])
            return
        if message.get("text") == "crash":
            raise KeyError("crashed in receive")
        if message.get("text") == "bad-close":
            await send({"type": "websocket.close", "code": 1005})
        payload = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
        await send({"type": "websocket.send", **payload})


async def http_and_ws_app(scope: Scope, receive: Any, send: Any) -> None:
    """HTTP beside websockets: POST /login sets a cookie, /whoami (either kind) reads it."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from lifespan"
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    cookie = dict(scope["headers"]).get(b"cookie", b"").decode()
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": cookie})
        await send({"type": "websocket.close", "code": 1000})
        return
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/login":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers.append((b"set-cookie", b"session=" + body + b"; Path=/"))
        answer = b"welcome"
    elif scope["path"] == "/whoami":
        answer = cookie.encode()
    elif scope["path"] == "/state":
        answer = scope["state"]["greeting"].encode()
    else:
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


# Apps whose outcome differs between real servers (the test client warns about them).


async def returns_while_open(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "hi"})


async def raises_while_open(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise LookupError("after accept")
