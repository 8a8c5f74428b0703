"""Brokers carry sends, closes and group messages between worker processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from panther_ws.brokers.base import Broker, BrokerError, Delivery, DeliveryUnconfirmed
from panther_ws.brokers.memory import MemoryBroker

if TYPE_CHECKING:
    from panther_ws.brokers.manager import ManagerBroker
    from panther_ws.brokers.redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerError",
    "Delivery",
    "DeliveryUnconfirmed",
    "ManagerBroker",
    "MemoryBroker",
    "RedisBroker",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: RedisBroker needs the optional redis package.
    if name == "RedisBroker":
        from panther_ws.brokers.redis import RedisBroker

        return RedisBroker
    if name == "ManagerBroker":
        from panther_ws.brokers.manager import ManagerBroker

        return ManagerBroker
    raise AttributeError(f"module 'panther_ws.brokers' has no attribute {name!r}")
