"""Brokers carry sends, closes and group messages between worker processes."""

from panther_ws.brokers.base import Broker, BrokerError, Delivery
from panther_ws.brokers.memory import MemoryBroker

__all__ = ["Broker", "BrokerError", "Delivery", "MemoryBroker"]
