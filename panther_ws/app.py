"""``App``: the ASGI application, a dispatcher of scopes to handlers, a lifespan and a fallback.

Websocket scopes go to the :class:`~panther_ws.dispatch.Dispatcher`, the lifespan starts and
stops the App's :class:`~panther_ws.worker.Worker` (and relays to the fallback's), every
other scope goes to the fallback app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import anyio.abc

from panther_ws import status
from panther_ws.brokers.base import Broker
from panther_ws.connections import ConnectionRegistry
from panther_ws.dispatch import Dispatcher
from panther_ws.hosting.lifespan import LifespanRunner
from panther_ws.hosting.types import ASGIApp, ASGIMessage, Receive, Scope, Send
from panther_ws.protocol import DEFAULT_MAX_MESSAGE_SIZE
from panther_ws.routing import Router
from panther_ws.worker import (
    Worker,
    close_websocket_connection,
    send_message_to_group,
    send_message_to_websocket,
)

logger = logging.getLogger("panther_ws")

__all__ = [
    "App",
    "close_websocket_connection",
    "send_message_to_group",
    "send_message_to_websocket",
]


class App:
    """An ASGI app serving the websocket endpoints of ``urls``.

    ``fallback`` receives every non-websocket scope (HTTP, and lifespan too), so an App can
    front a Starlette, FastAPI or Panther HTTP app. ``max_message_size`` is applied to
    incoming messages: a larger one closes the connection with 1009. ``broker`` and
    ``group_send_timeout`` configure the App's :class:`~panther_ws.worker.Worker` (one per
    App and process), which holds its connections and reaches other workers'.
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
        self.worker = Worker(broker, group_send_timeout=group_send_timeout)
        self.dispatcher = Dispatcher(urls, self, max_message_size=max_message_size)
        self.max_message_size = max_message_size
        self.fallback = fallback

    # The worker's state, where the App's users and tests have always read it.

    @property
    def router(self) -> Router:
        return self.dispatcher.router

    @property
    def broker(self) -> Broker:
        return self.worker.broker

    @property
    def registry(self) -> ConnectionRegistry:
        return self.worker.registry

    @property
    def worker_id(self) -> str:
        return self.worker.worker_id

    @property
    def group_send_timeout(self) -> float:
        return self.worker.group_send_timeout

    @property
    def slow_members_dropped(self) -> int:
        return self.worker.slow_members_dropped

    async def send_message_to_websocket(self, connection_id: str, data: Any) -> bool:
        """See :meth:`Worker.send_message_to_websocket`."""
        return await self.worker.send_message_to_websocket(connection_id, data)

    async def close_websocket_connection(
        self, connection_id: str, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = ""
    ) -> bool:
        """See :meth:`Worker.close_websocket_connection`."""
        return await self.worker.close_websocket_connection(connection_id, code, reason)

    async def send_message_to_group(self, group: str, data: Any) -> None:
        """See :meth:`Worker.send_message_to_group`."""
        await self.worker.send_message_to_group(group, data)

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "websocket":
            await self.dispatcher.serve(scope, receive, send)
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

    def serving(self) -> AbstractAsyncContextManager[None]:
        """Attached to the broker inside; the App becomes the default of the module functions."""
        return self.worker.serving()

    async def shutdown(self) -> None:
        """Close every live connection with 1001 (the lifespan's shutdown does this first)."""
        await self.worker.close_all(status.WS_1001_GOING_AWAY, "server shutting down")

    async def _serve_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the fallback's lifespan, then the worker; stop them in reverse order.

        The fallback answers startup first (its resources are ready before our connections)
        and shuts down after our connections are closed.
        """
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with anyio.create_task_group() as task_group:
            phase = "startup"
            try:
                fallback = await self._start_fallback(scope, task_group)
                async with self.serving():
                    await send({"type": "lifespan.startup.complete"})
                    phase = "shutdown"
                    await receive()
                    await self.shutdown()
                if fallback is not None:
                    await fallback.shutdown()
            except Exception as exc:
                logger.exception("%s failed", phase)
                await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            task_group.cancel_scope.cancel()  # a fallback that lingers after its shutdown

    async def _start_fallback(
        self, scope: Scope, task_group: anyio.abc.TaskGroup
    ) -> LifespanRunner | None:
        """The fallback's lifespan, started, sharing the server's state; None if it has none.

        A fallback whose lifespan scope raises, or answers it with anything but lifespan
        messages, does not support lifespan, as uvicorn reads it (a bare Channels
        ``URLRouter`` raises; an HTTP app that never looks at the scope type answers
        HTTP); one that reports ``lifespan.startup.failed`` fails our startup with it.
        """
        if self.fallback is None:
            return None
        # The server bounds the wait.
        runner = LifespanRunner(_lifespan_only(self.fallback), timeout=None)
        if "state" in scope:
            runner.state = scope["state"]
        await runner.startup(task_group)
        return runner if runner.supported else None


class _NotALifespanMessage(RuntimeError):
    """Raised into a fallback that answers the lifespan scope with another protocol."""


def _lifespan_only(app: ASGIApp) -> ASGIApp:
    """``app`` whose lifespan ``send`` refuses non-lifespan messages by raising in the app,
    as uvicorn's does: so an HTTP-only fallback reads as "no lifespan", not as a failure."""

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        async def lifespan_send(message: ASGIMessage) -> None:
            if not str(message.get("type", "")).startswith("lifespan."):
                raise _NotALifespanMessage(
                    f"the fallback answered the lifespan scope with {message.get('type')!r}"
                )
            await send(message)

        await app(scope, receive, lifespan_send)

    return lifespan_app
