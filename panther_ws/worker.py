"""``Worker``: the live connections of one App in one process, and how to reach any other.

A worker owns its id, the registry of its connections and their groups, and its place on
the broker. Handlers reach it through its public methods (``register``, ``join``,
``leave``, ``forget``); the module functions ``send_message_to_websocket`` & co. act on the
worker of the calling handler, else on the one most recently started in this process.
"""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio

from panther_ws import status
from panther_ws.brokers.base import WORKER_ID_LENGTH, Broker, Delivery
from panther_ws.brokers.memory import MemoryBroker
from panther_ws.connections import ConnectionRegistry, Member
from panther_ws.hosting.primitives import progress_deadline
from panther_ws.hosting.types import ASGIMessage
from panther_ws.outgoing import websocket_send

logger = logging.getLogger("panther_ws")

# A connection id is its worker's id and this many random hex characters.
_CONNECTION_SUFFIX_BYTES = 10
# A group send pushes its deadline back every this many members: a clock read per member
# would cost more than the send itself.
_RENEW_EVERY = 64

#: The worker of the handler running in this context: the dispatcher sets it around a
#: connection's hooks, so the module functions called there act on the handler's own App.
current_worker: contextvars.ContextVar[Worker] = contextvars.ContextVar("panther_ws_worker")
_latest_worker: Worker | None = None


class Worker:
    """One App's connections in this process, attached to ``broker`` (a MemoryBroker if None).

    ``group_send_timeout`` is how long one member of a group may take to accept a group
    message. One that has not taken it by then is dropped (closed with 1013, removed from
    the group, counted in ``slow_members_dropped`` and logged): a client that stopped reading
    delays the other members once, by at most the timeout, and never again; and a member
    that knows it must reconnect is better off than one silently missing messages.
    """

    def __init__(self, broker: Broker | None = None, *, group_send_timeout: float = 2.0) -> None:
        global _latest_worker
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.group_send_timeout = group_send_timeout
        self.slow_members_dropped = 0
        self.registry = ConnectionRegistry()
        self._id: tuple[int, str] | None = None
        self._attached = False
        self._attached_on_first_use = AsyncExitStack()
        _latest_worker = self

    @property
    def worker_id(self) -> str:
        """New in every process, as ``gunicorn --preload`` builds the App once in the master
        and then forks it into each worker."""
        pid = os.getpid()
        if self._id is None or self._id[0] != pid:
            self._id = (pid, secrets.token_hex(WORKER_ID_LENGTH // 2))
        return self._id[1]

    # -- life ------------------------------------------------------------------------------

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Attached to the broker inside; the default worker of the module functions.

        The lifespan holds it for the life of the server, with ``async with`` in one task: a
        broker's listener is a task group, which only the task that entered it may leave,
        so even a cancelled lifespan detaches cleanly.
        """
        global _latest_worker
        _latest_worker = self
        async with self.broker.attach(self.worker_id, self._deliver):
            self._attached = True
            try:
                yield
            finally:
                self._attached = False

    async def ensure_attached(self) -> None:
        """Attached, or a clear error: a connection cannot be served outside the broker."""
        await self._attach_on_first_use()
        if not self._attached:
            raise RuntimeError(
                f"{type(self.broker).__name__} needs the ASGI lifespan to start its "
                "listener; run the server with lifespan enabled"
            )

    async def _attach_on_first_use(self) -> None:
        """No lifespan ran: a broker without a listener (MemoryBroker) attaches now.

        Such a broker has no task to stop, so it stays attached.
        """
        global _latest_worker
        if self._attached or self.broker.needs_listener:
            return
        _latest_worker = self
        await self._attached_on_first_use.enter_async_context(
            self.broker.attach(self.worker_id, self._deliver)
        )
        self._attached = True

    async def close_all(self, code: int, reason: str) -> None:
        """Close every live connection (a server shutting down)."""
        for connection in self.registry.connections():
            try:
                await connection.close(code, reason)
            except OSError:
                pass  # the client went away already

    # -- connections and groups ------------------------------------------------------------

    def register(self, connection: Member) -> str:
        """Hold an accepted connection; returns its new ``connection_id``.

        The id starts with this worker's, so a send from any worker is routed back here.
        """
        connection_id = self.worker_id + secrets.token_hex(_CONNECTION_SUFFIX_BYTES)
        self.registry.register(connection_id, connection)
        return connection_id

    async def forget(self, connection: Member) -> None:
        """The connection ended: drop it and its groups, whatever is being cancelled."""
        if connection.connection_id is None:
            return
        for group in self.registry.forget(connection.connection_id):
            with anyio.CancelScope(shield=True):
                await self.broker.leave_group(self.worker_id, group)

    async def join(self, group: str, connection: Member) -> None:
        connection_id = connection.connection_id
        if connection_id is None or connection_id not in self.registry:
            raise RuntimeError(
                f"join_group({group!r}) needs a live accepted connection; {connection!r} is "
                "not (call accept() first, and not after the connection ended)"
            )
        if self.registry.join(connection_id, group):
            await self.broker.join_group(self.worker_id, group)

    async def leave(self, group: str, connection: Member) -> None:
        connection_id = connection.connection_id
        if connection_id is not None and self.registry.leave(connection_id, group):
            await self.broker.leave_group(self.worker_id, group)

    # -- reaching connections from anywhere ------------------------------------------------

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
        await self.broker.publish_to_worker(
            connection_id[:WORKER_ID_LENGTH],
            Delivery("send", connection_id=connection_id, data=data),
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
        await self._attach_on_first_use()
        await self.broker.publish_to_group(group, Delivery("send", group=group, data=data))

    async def _deliver(self, delivery: Delivery) -> None:
        """Called by the broker for deliveries addressed to this worker."""
        if delivery.group is not None:
            await self._deliver_to_group(delivery.group, websocket_send(delivery.data))
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

    async def _deliver_to_group(self, group: str, message: ASGIMessage) -> None:
        # One message for all: a member's own send() would build it once per member.
        # Members in turn under one deadline that each member's progress pushes back: a
        # member that has not taken the message within group_send_timeout is dropped, so it
        # delays the others once, never again. A member that is closing (its own
        # disconnect() may be what sends this) is skipped.
        members = self.registry.members(group)
        position = 0
        while position < len(members):
            stuck: Member | None = None
            async with progress_deadline(self.group_send_timeout) as deadline:
                while position < len(members):
                    member = members[position]
                    position += 1
                    if not member.is_connected or member.is_closed:
                        continue
                    stuck = member
                    try:
                        await member.asgi_send(message)
                    except Exception as exc:  # it left meanwhile; the others are unaffected
                        logger.debug("group %r: sending to %r failed: %r", group, member, exc)
                    stuck = None
                    if position % _RENEW_EVERY == 0:
                        deadline.renew()
            if deadline.expired and stuck is not None:
                await self._drop_slow_member(group, stuck)

    async def _drop_slow_member(self, group: str, member: Member) -> None:
        self.slow_members_dropped += 1
        logger.warning(
            "group %r: %r did not take a message within %.1fs; dropping it (1013)",
            group,
            member,
            self.group_send_timeout,
        )
        await self.leave(group, member)
        async with progress_deadline(self.group_send_timeout):
            try:
                await member.close(status.WS_1013_TRY_AGAIN_LATER, "too slow for group messages")
            except Exception as exc:
                logger.debug("closing slow member %r failed: %r", member, exc)


def _resolve_worker() -> Worker:
    worker = current_worker.get(None) or _latest_worker
    if worker is None:
        raise RuntimeError(
            "no panther_ws App exists in this process; create one (App(urls)) first, "
            "or call app.send_message_to_websocket(...) on it"
        )
    return worker


async def send_message_to_websocket(connection_id: str, data: Any) -> bool:
    """Send ``data`` to ``connection_id`` through the current App (see :class:`Worker`)."""
    return await _resolve_worker().send_message_to_websocket(connection_id, data)


async def close_websocket_connection(
    connection_id: str, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = ""
) -> bool:
    """Close ``connection_id`` through the current App."""
    return await _resolve_worker().close_websocket_connection(connection_id, code, reason)


async def send_message_to_group(group: str, data: Any) -> None:
    """Send ``data`` to every member of ``group`` through the current App."""
    await _resolve_worker().send_message_to_group(group, data)
