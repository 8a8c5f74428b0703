"""ManagerBroker when its hub process dies, freezes, or does not know the target worker.

A send must return only once the hub forwarded it, and otherwise raise; never hang, never
drop silently. Real hub processes, killed and stopped with signals.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest

from panther_ws.brokers import BrokerError, Delivery, DeliveryUnconfirmed, ManagerBroker

pytestmark = pytest.mark.anyio
WORKER = "a" * 12


def _send(data: str) -> Delivery:
    return Delivery("send", connection_id=WORKER + "0" * 20, data=data)


@pytest.fixture
def broker() -> Iterator[ManagerBroker]:
    broker = ManagerBroker(publish_timeout=0.5)
    try:
        yield broker
    finally:
        broker.close()


class Received(list[object]):
    """What the worker was handed, with a wake-up for each arrival."""

    def __init__(self) -> None:
        super().__init__()
        self.arrival = anyio.Event()

    async def deliver(self, delivery: Delivery) -> None:
        self.append(delivery.data)
        self.arrival.set()
        self.arrival = anyio.Event()

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(2):
            while len(self) < count:
                await self.arrival.wait()


@asynccontextmanager
async def _attached(broker: ManagerBroker, received: Received) -> AsyncIterator[None]:
    async with broker.attach(WORKER, received.deliver):
        yield


async def test_a_send_after_the_hub_died_raises_at_once(
    anyio_backend: str, broker: ManagerBroker
) -> None:
    received = Received()
    async with _attached(broker, received):
        await broker.publish_to_worker(WORKER, _send("before"))
        assert broker._hub is not None
        broker._hub.kill()
        broker._hub.wait()
        for data in ("after", "and after"):
            with anyio.fail_after(0.2), pytest.raises(BrokerError, match="was not delivered"):
                await broker.publish_to_worker(WORKER, _send(data))
        with anyio.fail_after(0.2), pytest.raises(BrokerError, match="was not delivered"):
            await broker.publish_to_group("room", _send("to the group"))
    assert received == ["before"]


async def test_a_send_to_a_worker_the_hub_does_not_know_raises(
    anyio_backend: str, broker: ManagerBroker
) -> None:
    async with _attached(broker, Received()):
        with pytest.raises(BrokerError, match="no worker bbbbbbbbbbbb is connected"):
            await broker.publish_to_worker("b" * 12, _send("to a stopped worker"))


async def test_a_frozen_hub_makes_a_send_unconfirmed_and_later_answers_stay_in_order(
    anyio_backend: str, broker: ManagerBroker
) -> None:
    received = Received()
    async with _attached(broker, received):
        assert broker._hub is not None
        broker._hub.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(DeliveryUnconfirmed, match=r"did not answer in 0\.5 s"):
                await broker.publish_to_worker(WORKER, _send("while frozen"))
        finally:
            broker._hub.send_signal(signal.SIGCONT)
        # The hub's late answer belongs to the send that gave up, not to this one.
        await broker.publish_to_worker(WORKER, _send("after"))
        await received.wait_for(2)
    assert received == ["while frozen", "after"]  # "unconfirmed": it did arrive, here
