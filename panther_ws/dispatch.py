"""Running one websocket scope through its handler: route, admit, converse, clean up.

The rules of a rejection (1008 naming the cause, 1000 for a handler that did not accept)
and of a failure (1011, then the exception re-raised for the server to log) live here, so
every connection of every App ends by them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

import anyio

from panther_ws import status
from panther_ws.converters import ConnectSignature, PathVariableError
from panther_ws.hosting.types import Receive, Scope, Send
from panther_ws.protocol.connection import MAX_CLOSE_REASON_BYTES
from panther_ws.routing import Router, URLConfigurationError
from panther_ws.websocket import GenericWebsocket, Host
from panther_ws.worker import current_worker

logger = logging.getLogger("panther_ws")


class Dispatcher:
    """Routes websocket scopes of ``urls`` to new handler instances, built for ``host``.

    Each pattern's variables are checked against its endpoint's ``connect()`` when the
    dispatcher is built, so a table that cannot work fails at start-up with its name.
    """

    def __init__(self, urls: Mapping[str, Any], host: Host, *, max_message_size: int) -> None:
        self.router = Router(urls, endpoint_base=GenericWebsocket)
        self.host = host
        self.max_message_size = max_message_size
        self._signatures: dict[type[Any], ConnectSignature] = {}
        for pattern, endpoint in self.router.patterns.items():
            signature = ConnectSignature.of(endpoint.connect)
            for name in _pattern_variables(pattern):
                if not signature.accepts(name):
                    raise URLConfigurationError(
                        f"URL pattern {pattern!r} has <{name}>, but "
                        f"{endpoint.__name__}.connect() has no parameter {name!r} "
                        "(add it, or **kwargs)"
                    )
            self._signatures[endpoint] = signature

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        worker = self.host.worker
        await worker.ensure_attached()
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before connecting
        route = self.router.resolve(scope["path"])
        if route is None:
            await _reject(send, f"no route for {scope['path']!r}")
            return
        try:
            path_variables = self._signatures[route.endpoint].convert(route.path_variables)
        except PathVariableError as exc:
            await _reject(send, str(exc))
            return
        connection: GenericWebsocket = route.endpoint(scope, send, self.host, path_variables)
        token = current_worker.set(worker)
        try:
            if not await _admit(connection, send):
                return
            await connection.connect(**path_variables)
            if not connection.is_connected:
                if not connection.is_rejected:
                    await connection.close(status.WS_1000_NORMAL_CLOSURE, "")
                return
            await self._converse(connection, receive)
        except BaseException:
            await _fail(connection)
            raise
        finally:
            current_worker.reset(token)
            await worker.forget(connection)

    async def _converse(self, connection: GenericWebsocket, receive: Receive) -> None:
        code, reason = status.WS_1006_ABNORMAL_CLOSURE, ""
        handle, limit = connection.receive, self.max_message_size  # the hot loop
        while True:
            message = await receive()
            message_type = message["type"]
            if message_type == "websocket.receive":
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if len(data) > limit:
                    await connection.close(status.WS_1009_MESSAGE_TOO_BIG, "message too big")
                    continue
                await handle(data)
            elif message_type == "websocket.disconnect":
                code = message.get("code", status.WS_1005_NO_STATUS_RCVD)
                reason = message.get("reason") or ""
                break
        connection.is_connected = False
        await connection.disconnect(code, reason)


async def _admit(connection: GenericWebsocket, send: Send) -> bool:
    """Run auth and permissions; reject with 1008 naming the cause."""
    endpoint = type(connection)
    if endpoint.auth is not None:
        try:
            connection.user = await _call(endpoint.auth, connection)
        except Exception as exc:
            connection.is_rejected = True
            await _reject(send, f"authentication failed: {exc}")
            return False
    permissions = endpoint.permissions
    if permissions and not isinstance(permissions, list | tuple):
        permissions = [permissions]
    for permission in permissions or ():
        if not await _call(permission, connection):
            connection.is_rejected = True
            name = getattr(permission, "__name__", type(permission).__name__)
            await _reject(send, f"permission denied: {name}")
            return False
    return True


async def _fail(connection: GenericWebsocket) -> None:
    """A hook raised: close with 1011 and let disconnect() know, once."""
    with anyio.CancelScope(shield=True):
        was_connected = connection.is_connected
        connection.is_connected = False
        try:
            await connection.close(status.WS_1011_INTERNAL_ERROR, "")
        except Exception:
            pass  # the client is gone or the server refuses: the error below matters more
        if was_connected:
            try:
                await connection.disconnect(status.WS_1011_INTERNAL_ERROR, "")
            except Exception:
                logger.exception("disconnect() of %r raised while handling an error", connection)


async def _reject(send: Send, reason: str) -> None:
    """Refuse with 1008; the reason is cut to what a close frame holds (it may quote a path)."""
    encoded = reason.encode("utf-8")
    if len(encoded) > MAX_CLOSE_REASON_BYTES:
        reason = encoded[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", errors="ignore") + "..."
    await send(
        {"type": "websocket.close", "code": status.WS_1008_POLICY_VIOLATION, "reason": reason}
    )


async def _call(hook: Any, connection: GenericWebsocket) -> Any:
    if isinstance(hook, type):
        hook = hook()
    result = hook(connection)
    if inspect.isawaitable(result):
        result = await result
    return result


def _pattern_variables(pattern: str) -> list[str]:
    return [
        segment[1:-1]
        for segment in pattern.split("/")
        if segment.startswith("<") and segment.endswith(">")
    ]
