"""The broker interface: how an App reaches connections held by other workers.

Every App is one *worker* with a random ``worker_id`` (12 lowercase hex). A ``connection_id``
starts with the id of the worker that holds it, so a send to one connection is routed to
exactly one worker. A group send reaches every worker that has at least one member in the
group (``join_group``/``leave_group`` tell the broker), and each fans out to its own members.

A publish either returns, and then the target worker(s) have the delivery, or raises a
:class:`BrokerError` that says why not; never a silent loss.

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
        """Return once ``worker_id`` has ``delivery``; else raise :class:`BrokerError`."""

    @abstractmethod
    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        """Return once every worker with members in ``group`` has ``delivery``; else raise."""

    @abstractmethod
    async def join_group(self, worker_id: str, group: str) -> None:
        """``worker_id`` now has a member in ``group``: start receiving its deliveries."""

    @abstractmethod
    async def leave_group(self, worker_id: str, group: str) -> None:
        """``worker_id``'s last member left ``group``: stop receiving its deliveries."""


class BrokerError(Exception):
    """The delivery did not arrive, and will not arrive later: the message says why.

    Retrying it cannot deliver it twice. (Subclass: :class:`DeliveryUnconfirmed`.)
    """


class DeliveryUnconfirmed(BrokerError):
    """The broker failed after the delivery was handed on: it may or may not have arrived.

    Only a send in flight at the moment the broker's server died or froze ends this way;
    the message names the workers that may have it.
    """


__all__ = [
    "WORKER_ID_LENGTH",
    "Broker",
    "BrokerError",
    "Delivery",
    "DeliveryHandler",
    "DeliveryUnconfirmed",
]
