"""RedisBroker: workers on any number of processes and machines that share a Redis server.

Channels: ``<prefix>:worker:<worker_id>`` for sends and closes addressed to one connection
(the worker id is the first 12 hex of the connection id), ``<prefix>:group:<name>`` for
group sends. So one send is one ``PUBLISH`` to the one worker that holds the connection,
and one group send is one ``PUBLISH`` however many members and workers the group has; a
worker subscribes to a group's channel while it has local members. Nothing relies on a shared
filesystem or on process ids, so workers may live on different machines.

If Redis goes away, the listener reconnects with exponential backoff (``reconnect_delay``
doubling up to ``max_reconnect_delay``) and redis-py re-subscribes every channel; the
websockets stay open. A publish during the outage raises :class:`BrokerError` at once (after
``publish_timeout`` at most), and deliveries published while a listener is disconnected are
lost, as Redis pub/sub keeps no backlog: the loss window is the outage plus one reconnect
delay. redis-py's asyncio client runs on asyncio only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import sniffio

from panther_ws.brokers._codec import decode_delivery, encode_delivery
from panther_ws.brokers.base import Broker, BrokerError, Delivery, DeliveryHandler

logger = logging.getLogger("panther_ws.brokers.redis")


class RedisBroker(Broker):
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "panther_ws",
        publish_timeout: float = 2.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.publish_timeout = publish_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._redis: Any = None
        self._pubsubs: dict[str, Any] = {}

    def _worker_channel(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def _group_channel(self, group: str) -> str:
        return f"{self.prefix}:group:{group}"

    @asynccontextmanager
    async def attach(self, worker_id: str, deliver: DeliveryHandler) -> AsyncIterator[None]:
        if sniffio.current_async_library() != "asyncio":
            raise RuntimeError(
                "RedisBroker uses redis-py's asyncio client and needs the asyncio backend; "
                "run the app on asyncio (uvicorn, hypercorn's asyncio worker)"
            )
        from redis import asyncio as redis_asyncio

        if self._redis is None:
            self._redis = redis_asyncio.from_url(
                self.url,
                socket_timeout=self.publish_timeout,
                socket_connect_timeout=self.publish_timeout,
            )
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._worker_channel(worker_id))
        except Exception as exc:
            raise BrokerError(f"cannot subscribe on Redis at {self.url}: {exc}") from exc
        self._pubsubs[worker_id] = pubsub
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._listen, pubsub, deliver)
                try:
                    yield
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            del self._pubsubs[worker_id]
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()
                if not self._pubsubs:
                    redis, self._redis = self._redis, None
                    await redis.aclose()

    async def _listen(self, pubsub: Any, deliver: DeliveryHandler) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        delay = self.reconnect_delay
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
                delay = self.reconnect_delay
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                logger.warning(
                    "Redis listener lost its connection (%s); retrying in %.2fs", exc, delay
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                await deliver(decode_delivery(message["data"]))
            except Exception:
                logger.exception("delivering a message from Redis failed")

    async def _publish(self, channel: str, delivery: Delivery) -> None:
        if self._redis is None:
            raise BrokerError("RedisBroker is not attached: run the App's lifespan startup first")
        try:
            with anyio.fail_after(self.publish_timeout):
                await self._redis.publish(channel, encode_delivery(delivery))
        except BrokerError:
            raise
        except Exception as exc:
            raise BrokerError(
                f"could not publish to Redis at {self.url} ({type(exc).__name__}: {exc}); "
                "the message was not sent"
            ) from exc

    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        await self._publish(self._worker_channel(worker_id), delivery)

    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        await self._publish(self._group_channel(group), delivery)

    async def join_group(self, worker_id: str, group: str) -> None:
        pubsub = self._pubsubs.get(worker_id)
        if pubsub is not None:
            await pubsub.subscribe(self._group_channel(group))

    async def leave_group(self, worker_id: str, group: str) -> None:
        pubsub = self._pubsubs.get(worker_id)
        if pubsub is not None:
            await pubsub.unsubscribe(self._group_channel(group))
