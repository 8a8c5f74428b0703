"""``App``: the ASGI application that routes websockets to ``GenericWebsocket`` classes.

One App is one *worker*: it holds its live connections in a registry and reaches other
workers' connections through its broker. Module-level ``send_message_to_websocket`` & co. act
on the App of the calling handler, else on the App most recently started in this process.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio

from panther_ws import status
from panther_ws.brokers.base import WORKER_ID_LENGTH, Broker, Delivery
from panther_ws.brokers.memory import MemoryBroker
from panther_ws.connections import ConnectionRegistry
from panther_ws.converters import ConnectSignature, PathVariableError
from panther_ws.hosting.primitives import progress_deadline
from panther_ws.hosting.types import ASGIApp, Receive, Scope, Send
from panther_ws.protocol.connection import MAX_CLOSE_REASON_BYTES
from panther_ws.routing import Router, URLConfigurationError
from panther_ws.websocket import GenericWebsocket, encode_outgoing

logger = logging.getLogger("panther_ws")


DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
# A group send pushes its deadline back every this many members: a clock read per member
# would cost more than the send itself.
_RENEW_EVERY = 64

_current_app: contextvars.ContextVar[App] = contextvars.ContextVar("panther_ws_app")
_latest_app: App | None = None


class App:
    """An ASGI app serving the websocket endpoints of ``urls``.

    ``fallback`` receives every non-websocket scope (HTTP, and lifespan too), so an App can
    front a Starlette, FastAPI or Panther HTTP app. ``max_message_size`` is applied to
    incoming messages: a larger one closes the connection with 1009.

    ``group_send_timeout`` is how long one member of a group may take to accept a group
    message. One that has not taken it by then is dropped (closed with 1013, removed from
    the group, counted in ``slow_members_dropped`` and logged): a client that stopped reading
    delays the other members once, by at most the timeout, and never again; and a member
    that knows it must reconnect is better off than one silently missing messages.
    """

    def __init__(
        self,
        urls: Mapping[str, Any],
        *,
        broker: Broker | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        fallback: ASGIApp | None = None,
        group_send_timeout: float = 2.0,
    ) -> None:
        global _latest_app
        self.router = Router(urls, endpoint_base=GenericWebsocket)
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
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.max_message_size = max_message_size
        self.fallback = fallback
        self.group_send_timeout = group_send_timeout
        self.slow_members_dropped = 0
        self._worker: tuple[int, str] | None = None
        self.registry = ConnectionRegistry()
        self._attached = False
        self._implicit_attach = AsyncExitStack()
        _latest_app = self

    @property
    def worker_id(self) -> str:
        """This worker's id: new in every process, as ``gunicorn --preload`` builds the App
        once in the master and then forks it into each worker."""
        pid = os.getpid()
        if self._worker is None or self._worker[0] != pid:
            self._worker = (pid, secrets.token_hex(WORKER_ID_LENGTH // 2))
        return self._worker[1]

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif scope_type == "lifespan":
            await self._serve_lifespan(scope, receive, send)
        elif self.fallback is not None:
            await self.fallback(scope, receive, send)
        elif scope_type == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"Not Found"})

    # -- lifespan --------------------------------------------------------------------------

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Attached to the broker inside; the App becomes the default of the module functions.

        The lifespan holds it for the life of the server, with ``async with`` in one task: a
        broker's listener is a task group, which only the task that entered it may leave,
        so even a cancelled lifespan detaches cleanly.
        """
        global _latest_app
        _latest_app = self
        async with self.broker.attach(self.worker_id, self._deliver):
            self._attached = True
            try:
                yield
            finally:
                self._attached = False

    async def _attach_without_lifespan(self) -> None:
        """No lifespan ran: a broker without a listener (MemoryBroker) attaches on first use.

        Such a broker has no task to stop, so it is never detached.
        """
        if not self._attached and not self.broker.needs_listener:
            await self._implicit_attach.enter_async_context(self.serving())

    async def shutdown(self) -> None:
        """Close every live connection with 1001 (the lifespan's shutdown does this first)."""
        for connection in self.registry.connections():
            try:
                await connection.close(status.WS_1001_GOING_AWAY, "server shutting down")
            except OSError:
                pass  # the client went away already

    async def _serve_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fallback is None:
            await _run_lifespan(receive, send, self)
            return
        await _LifespanRelay(self, scope, receive, send).run()

    # -- websockets ------------------------------------------------------------------------

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._attach_without_lifespan()
        if not self._attached:
            raise RuntimeError(
                f"{type(self.broker).__name__} needs the ASGI lifespan to start its "
                "listener; run the server with lifespan enabled"
            )
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before connecting
        route = self.router.resolve(scope["path"])
        if route is None:
            await _reject(send, f"no route for {scope['path']!r}")
            return
        signature = self._signatures[route.endpoint]
        try:
            path_variables = signature.convert(route.path_variables)
        except PathVariableError as exc:
            await _reject(send, str(exc))
            return
        connection: GenericWebsocket = route.endpoint(scope, send, self, path_variables)
        token = _current_app.set(self)
        try:
            if not await self._admit(connection, send):
                return
            await connection.connect(**path_variables)
            if not connection.is_connected:
                if not connection.is_rejected:
                    await connection.close(status.WS_1000_NORMAL_CLOSURE, "")
                return
            await self._converse(connection, receive)
        except BaseException:
            await self._fail(connection)
            raise
        finally:
            _current_app.reset(token)
            await self._forget(connection)

    async def _admit(self, connection: GenericWebsocket, send: Send) -> bool:
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

    async def _fail(self, connection: GenericWebsocket) -> None:
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
                    logger.exception(
                        "disconnect() of %r raised while handling an error", connection
                    )

    def _register(self, connection: GenericWebsocket) -> None:
        self.registry.register(connection)

    async def _forget(self, connection: GenericWebsocket) -> None:
        if connection.connection_id is None:
            return
        for group in self.registry.forget(connection.connection_id):
            with anyio.CancelScope(shield=True):
                await self.broker.leave_group(self.worker_id, group)

    async def _join_group(self, connection: GenericWebsocket, group: str) -> None:
        if connection.connection_id is None:
            raise RuntimeError("join_group() needs an accepted connection; call accept() first")
        if self.registry.join(connection, group):
            await self.broker.join_group(self.worker_id, group)

    async def _leave_group(self, connection: GenericWebsocket, group: str) -> None:
        if connection.connection_id is not None and self.registry.leave(
            connection.connection_id, group
        ):
            await self.broker.leave_group(self.worker_id, group)

    # -- reaching connections from anywhere ----------------------------------------------

    async def send_message_to_websocket(self, connection_id: str, data: Any) -> bool:
        """Send to a connection of any worker.

        Local: True if it was delivered, False if no such connection is live here. Another
        worker's connection: True once that worker has the message; otherwise the broker
        raises ``BrokerError`` (it did not arrive and will not: safe to retry) or
        ``DeliveryUnconfirmed`` (it may have arrived; see docs/deployment.md).
        """
        if connection_id.startswith(self.worker_id):
            connection = self.registry.get(connection_id)
            if connection is None:
                return False
            await connection.send(data)
            return True
        worker_id = connection_id[:WORKER_ID_LENGTH]
        await self.broker.publish_to_worker(
            worker_id, Delivery("send", connection_id=connection_id, data=data)
        )
        return True

    async def close_websocket_connection(
        self, connection_id: str, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = ""
    ) -> bool:
        """Close a connection of any worker; returns as :meth:`send_message_to_websocket`."""
        if connection_id.startswith(self.worker_id):
            connection = self.registry.get(connection_id)
            if connection is None:
                return False
            await connection.close(code, reason)
            return True
        await self.broker.publish_to_worker(
            connection_id[:WORKER_ID_LENGTH],
            Delivery("close", connection_id=connection_id, code=code, reason=reason),
        )
        return True

    async def send_message_to_group(self, group: str, data: Any) -> None:
        """Send to every member of ``group`` on every worker that has members.

        Returns once every such worker has the message; raises as
        :meth:`send_message_to_websocket` does when one could not be reached.
        """
        await self._attach_without_lifespan()
        await self.broker.publish_to_group(group, Delivery("send", group=group, data=data))

    async def _deliver(self, delivery: Delivery) -> None:
        """Called by the broker for deliveries addressed to this worker."""
        if delivery.group is not None:
            await self._deliver_to_group(delivery.group, encode_outgoing(delivery.data))
            return
        if delivery.connection_id is None:
            return
        connection = self.registry.get(delivery.connection_id)
        if connection is None:
            return
        try:
            if delivery.action == "close":
                await connection.close(delivery.code, delivery.reason)
            else:
                await connection.send(delivery.data)
        except OSError:
            pass  # the connection went away between lookup and send

    async def _deliver_to_group(self, group: str, message: dict[str, Any]) -> None:
        # Members in turn under one deadline that each member's progress pushes back: a
        # member that has not taken the message within group_send_timeout is dropped, so it
        # delays the others once, never again. A member that is closing (its own
        # disconnect() may be what sends this) is skipped.
        members = self.registry.members(group)
        position = 0
        while position < len(members):
            stuck: GenericWebsocket | None = None
            async with progress_deadline(self.group_send_timeout) as deadline:
                while position < len(members):
                    member = members[position]
                    position += 1
                    if not member.is_connected or member.is_closed:
                        continue
                    stuck = member
                    try:
                        await member._asgi_send(message)
                    except Exception as exc:  # it left meanwhile; the others are unaffected
                        logger.debug("group %r: sending to %r failed: %r", group, member, exc)
                    stuck = None
                    if position % _RENEW_EVERY == 0:
                        deadline.renew()
            if deadline.expired and stuck is not None:
                await self._drop_slow_member(group, stuck)

    async def _drop_slow_member(self, group: str, member: GenericWebsocket) -> None:
        self.slow_members_dropped += 1
        logger.warning(
            "group %r: %r did not take a message within %.1fs; dropping it (1013)",
            group,
            member,
            self.group_send_timeout,
        )
        await self._leave_group(member, group)
        async with progress_deadline(self.group_send_timeout):
            try:
                await member.close(status.WS_1013_TRY_AGAIN_LATER, "too slow for group messages")
            except Exception as exc:
                logger.debug("closing slow member %r failed: %r", member, exc)


def _resolve_app() -> App:
    app = _current_app.get(None) or _latest_app
    if app is None:
        raise RuntimeError(
            "no panther_ws App exists in this process; create one (App(urls)) first, "
            "or call app.send_message_to_websocket(...) on it"
        )
    return app


async def send_message_to_websocket(connection_id: str, data: Any) -> bool:
    """Send ``data`` to ``connection_id`` through the current App (see :class:`App`)."""
    return await _resolve_app().send_message_to_websocket(connection_id, data)


async def close_websocket_connection(
    connection_id: str, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = ""
) -> bool:
    """Close ``connection_id`` through the current App."""
    return await _resolve_app().close_websocket_connection(connection_id, code, reason)


async def send_message_to_group(group: str, data: Any) -> None:
    """Send ``data`` to every member of ``group`` through the current App."""
    await _resolve_app().send_message_to_group(group, data)


# -- helpers ---------------------------------------------------------------------------------


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


async def _run_lifespan(receive: Receive, send: Send, app: App) -> None:
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    phase = "startup"
    try:
        async with app.serving():
            await send({"type": "lifespan.startup.complete"})
            phase = "shutdown"
            await receive()
            await app.shutdown()
    except Exception as exc:
        logger.exception("%s failed", phase)
        await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
        return
    await send({"type": "lifespan.shutdown.complete"})


class _LifespanRelay:
    """Runs the App's lifespan and forwards it to the fallback app, in one task group.

    The fallback answers startup first (its resources are ready before our connections),
    and shuts down after our connections are closed.
    """

    def __init__(self, app: App, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.scope, self.receive, self.send = app, scope, receive, send
        self._to_fallback: list[dict[str, Any]] = []
        self._from_fallback: list[MutableMapping[str, Any]] = []
        self._fallback_changed = anyio.Event()
        self._fallback_wants = anyio.Event()
        self._fallback_done = False

    async def run(self) -> None:
        message = await self.receive()
        if message["type"] != "lifespan.startup":
            return
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._run_fallback)
            fallback_failed = await self._forward("startup")
            if fallback_failed is not None:
                await self.send({"type": "lifespan.startup.failed", "message": fallback_failed})
                task_group.cancel_scope.cancel()
                return
            phase = "startup"
            try:
                async with self.app.serving():
                    await self.send({"type": "lifespan.startup.complete"})
                    phase = "shutdown"
                    await self.receive()
                    await self.app.shutdown()
            except Exception as exc:
                logger.exception("%s failed", phase)
                await self.send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
                task_group.cancel_scope.cancel()
                return
            fallback_failed = await self._forward("shutdown")
            if fallback_failed is not None:
                await self.send({"type": "lifespan.shutdown.failed", "message": fallback_failed})
            else:
                await self.send({"type": "lifespan.shutdown.complete"})
            task_group.cancel_scope.cancel()

    async def _forward(self, phase: str) -> str | None:
        """Pass one lifespan event to the fallback; its failure message, or None."""
        if self._fallback_done:
            return None
        self._to_fallback.append({"type": f"lifespan.{phase}"})
        self._fallback_wants.set()
        while not self._from_fallback and not self._fallback_done:
            self._fallback_changed = anyio.Event()
            await self._fallback_changed.wait()
        if not self._from_fallback:
            return None  # the fallback returned: it does not support lifespan
        reply = self._from_fallback.pop(0)
        if reply["type"].endswith(".failed"):
            return str(reply.get("message", ""))
        return None

    async def _run_fallback(self) -> None:
        async def receive() -> MutableMapping[str, Any]:
            while not self._to_fallback:
                self._fallback_wants = anyio.Event()
                await self._fallback_wants.wait()
            return self._to_fallback.pop(0)

        async def send(message: MutableMapping[str, Any]) -> None:
            self._from_fallback.append(message)
            self._fallback_changed.set()

        assert self.app.fallback is not None
        try:
            await self.app.fallback(self.scope, receive, send)
        except Exception:
            logger.debug("the fallback app does not support lifespan", exc_info=True)
        finally:
            self._fallback_done = True
            self._fallback_changed.set()
