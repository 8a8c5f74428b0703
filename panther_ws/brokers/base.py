"""The broker interface: how an App reaches connections held by other workers.

Every App is one *worker* with a random ``worker_id`` (12 lowercase hex). A ``connection_id``
starts with the id of the worker that holds it, so a send to one connection is routed to
exactly one worker: one publish, no broadcast. Groups are channels: a worker subscribes to a
group while at least one of its connections is a member, so a group send is one publish, and
every subscribed worker fans out to its own members.

A broker only moves :class:`Delivery` values between workers; the App decides what they mean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal

WORKER_ID_LENGTH = 12


@dataclass(frozen=True)
class Delivery:
    """One instruction for the worker(s) holding the target connection(s).

    ``connection_id`` is set for a single connection, ``group`` for a group send. ``data`` is
    a str, bytes or any JSON-able value; brokers must hand it over with its type intact
    (bytes stay bytes, str stays str).
    """

    action: Literal["send", "close"]
    connection_id: str | None = None
    group: str | None = None
    data: Any = None
    code: int = 1000
    reason: str = ""


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Broker(ABC):
    """Moves deliveries between workers. Implementations: Memory, Redis, Manager."""

    #: Whether the broker runs a listener task inside ``attach()``, so the App must attach it
    #: in lifespan startup; a broker without one is attached on first use if no lifespan ran.
    needs_listener: bool = True

    @abstractmethod
    def attach(self, worker_id: str, deliver: DeliveryHandler) -> AbstractAsyncContextManager[None]:
        """Register a worker for as long as the context is open.

        While inside, deliveries published to ``worker_id``, or to a group this worker has
        joined, are passed to ``deliver``. Any listener task lives inside the context, so
        leaving it stops the listener (structured concurrency: the App opens it in lifespan).
        """

    @abstractmethod
    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        """Send ``delivery`` to one worker; raises a ``BrokerError`` if it cannot be sent."""

    @abstractmethod
    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        """Send ``delivery`` to every worker subscribed to ``group`` (one publish)."""

    @abstractmethod
    async def join_group(self, worker_id: str, group: str) -> None:
        """``worker_id`` now has a member in ``group``: start receiving its deliveries."""

    @abstractmethod
    async def leave_group(self, worker_id: str, group: str) -> None:
        """``worker_id``'s last member left ``group``: stop receiving its deliveries."""


class BrokerError(Exception):
    """A delivery could not be published (for example, Redis is unreachable)."""


__all__ = ["WORKER_ID_LENGTH", "Broker", "BrokerError", "Delivery", "DeliveryHandler"]
