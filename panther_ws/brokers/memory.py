"""MemoryBroker: workers in one process, as if they shared a Redis.

The default broker. Each App is a worker; several Apps given one MemoryBroker exchange
deliveries exactly as separate processes on a RedisBroker would, so multi-worker behaviour
can be tested in one process without a server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from panther_ws.brokers.base import Broker, BrokerError, Delivery, DeliveryHandler


class MemoryBroker(Broker):
    """Delivers in the publisher's task, by calling the target worker's handler directly."""

    needs_listener = False

    def __init__(self) -> None:
        self._workers: dict[str, DeliveryHandler] = {}
        self._groups: dict[str, set[str]] = {}

    @asynccontextmanager
    async def attach(self, worker_id: str, deliver: DeliveryHandler) -> AsyncIterator[None]:
        self._workers[worker_id] = deliver
        try:
            yield
        finally:
            del self._workers[worker_id]
            for members in self._groups.values():
                members.discard(worker_id)

    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        deliver = self._workers.get(worker_id)
        if deliver is None:
            # As RedisBroker does for a worker without a heartbeat: never a silent drop.
            raise BrokerError(
                f"no worker {worker_id!r} is attached to this MemoryBroker (it stopped, or the "
                f"connection id {delivery.connection_id!r} is not one of ours); not delivered"
            )
        await deliver(delivery)

    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        for worker_id in tuple(self._groups.get(group, ())):
            deliver = self._workers.get(worker_id)
            if deliver is not None:
                await deliver(delivery)

    async def join_group(self, worker_id: str, group: str) -> None:
        self._groups.setdefault(group, set()).add(worker_id)

    async def leave_group(self, worker_id: str, group: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.discard(worker_id)
            if not members:
                del self._groups[group]
