"""Cross-worker delivery: RedisBroker and ManagerBroker against the in-process MemoryBroker.

    python benchmarks/brokers.py        # starts its own redis-server on a free port

1. Latency of one delivery from worker A to worker B (2,000 sequential sends): p50 / p99.
2. Throughput: 20,000 deliveries, one sender awaiting each, until B has them all; then the
   same from 50 concurrent senders.
3. Group fan-out: one message to 10,000 connections spread over 3 workers (3 Apps, each with
   its own broker instance, as 3 processes would have), until every connection has it.

Peer: bare redis-py PUBLISH to a SUBSCRIBE listener, which is what RedisBroker did before it
confirmed deliveries (no retry, no acknowledgement: a restart loses messages silently). The
difference is the price of "returned means delivered" (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from runtime import Driver, Member

from panther_ws import App
from panther_ws.brokers import Broker, Delivery, ManagerBroker, MemoryBroker, RedisBroker
from panther_ws.brokers._codec import decode_delivery, encode_delivery
from panther_ws.brokers.base import DeliveryHandler
from panther_ws_testing._redis import RedisServer

LATENCY_SENDS, THROUGHPUT_SENDS, FAN_OUT, SENDERS = 2000, 20_000, 10_000, 50


class BarePubSub(Broker):
    """The peer: one PUBLISH per send, a SUBSCRIBE listener, nothing confirmed."""

    def __init__(self, url: str) -> None:
        from redis import asyncio as redis_asyncio

        self._redis = redis_asyncio.from_url(url)

    @asynccontextmanager
    async def attach(self, worker_id: str, deliver: DeliveryHandler) -> AsyncIterator[None]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"bare:{worker_id}")

        async def listen() -> None:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    await deliver(decode_delivery(message["data"]))

        task = asyncio.create_task(listen())
        try:
            yield
        finally:
            task.cancel()
            await pubsub.aclose()

    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        await self._redis.publish(f"bare:{worker_id}", encode_delivery(delivery))

    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        raise NotImplementedError

    async def join_group(self, worker_id: str, group: str) -> None:
        raise NotImplementedError

    async def leave_group(self, worker_id: str, group: str) -> None:
        raise NotImplementedError


async def latency_and_throughput(
    make_pair: Callable[[], tuple[Broker, Broker]],
) -> tuple[float, float, float, float]:
    sender, receiver = make_pair()
    arrived: asyncio.Queue[float] = asyncio.Queue()
    count = 0
    done = asyncio.Event()

    async def deliver(delivery: Delivery) -> None:
        nonlocal count
        count += 1
        arrived.put_nowait(time.perf_counter())
        if count in (LATENCY_SENDS + THROUGHPUT_SENDS, LATENCY_SENDS + 2 * THROUGHPUT_SENDS):
            done.set()

    async def send_many(sends: int) -> None:
        for _ in range(sends):
            await sender.publish_to_worker(
                "b" * 12, Delivery("send", connection_id="b" * 32, data="x" * 32)
            )

    async def ignore(delivery: Delivery) -> None:
        pass

    async with receiver.attach("b" * 12, deliver), sender.attach("a" * 12, ignore):
        await asyncio.sleep(0.2)  # subscriptions settle
        samples = []
        for _ in range(LATENCY_SENDS):
            start = time.perf_counter()
            await sender.publish_to_worker(
                "b" * 12, Delivery("send", connection_id="b" * 32, data="x" * 32)
            )
            samples.append(await arrived.get() - start)
        start = time.perf_counter()
        await send_many(THROUGHPUT_SENDS)
        await asyncio.wait_for(done.wait(), 120)
        rate = THROUGHPUT_SENDS / (time.perf_counter() - start)
        done.clear()
        start = time.perf_counter()
        async with asyncio.TaskGroup() as senders:
            for _ in range(SENDERS):
                senders.create_task(send_many(THROUGHPUT_SENDS // SENDERS))
        await asyncio.wait_for(done.wait(), 120)
        concurrent_rate = THROUGHPUT_SENDS / (time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], rate, concurrent_rate


async def fan_out(make_brokers: Callable[[], list[Broker]]) -> float:
    apps = [App({"ws/member/": Member}, broker=broker) for broker in make_brokers()]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.serving())
        drivers = [Driver(apps[index % 3], "/ws/member/") for index in range(FAN_OUT)]
        for driver in drivers:
            await driver.open()
            await driver.to_client.get()
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        await apps[0].send_message_to_group("everyone", "hello")
        async with asyncio.timeout(60):
            for driver in drivers:
                await driver.to_client.get()
        elapsed = time.perf_counter() - start
        for driver in drivers:
            await driver.close()
    return elapsed


async def main() -> None:
    redis = RedisServer()
    redis.start()
    hub = ManagerBroker()
    try:
        memory = MemoryBroker()
        pairs: dict[str, Callable[[], tuple[Broker, Broker]]] = {
            "MemoryBroker": lambda: (memory, memory),
            "RedisBroker": lambda: (RedisBroker(redis.url), RedisBroker(redis.url)),
            "bare PUBLISH": lambda: (BarePubSub(redis.url), BarePubSub(redis.url)),
            "ManagerBroker": lambda: (
                ManagerBroker(socket_path=hub.socket_path, start_hub=False),
                ManagerBroker(socket_path=hub.socket_path, start_hub=False),
            ),
        }
        print(
            f"{'broker':<14} {'p50':>9} {'p99':>9} {'1 sender/s':>11} {SENDERS:>3} senders/s "
            f"{'fan-out 10k/3 workers':>22}"
        )
        shared_memory = MemoryBroker()
        fan_outs: dict[str, Callable[[], list[Any]]] = {
            "MemoryBroker": lambda: [shared_memory] * 3,
            "RedisBroker": lambda: [RedisBroker(redis.url) for _ in range(3)],
            "ManagerBroker": lambda: [
                ManagerBroker(socket_path=hub.socket_path, start_hub=False) for _ in range(3)
            ],
        }
        for name, make_pair in pairs.items():
            p50, p99, rate, concurrent_rate = await latency_and_throughput(make_pair)
            spread = (
                f"{statistics.median([await fan_out(fan_outs[name]) for _ in range(3)]) * 1000:.1f} ms"
                if name in fan_outs
                else "-"
            )
            print(
                f"{name:<14} {p50 * 1e6:>7.0f}µs {p99 * 1e6:>7.0f}µs {rate:>11,.0f} "
                f"{concurrent_rate:>14,.0f} {spread:>22}"
            )
    finally:
        hub.close()
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
