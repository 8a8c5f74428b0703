"""RedisBroker: workers on any number of processes and machines that share a Redis server.

A send returns once the target worker has *confirmed* it; otherwise it raises, and the error
says whether the message surely did not arrive (:class:`BrokerError`) or might have
(:class:`DeliveryUnconfirmed`). How:

- Every delivery goes to one worker's channel, ``<prefix>:worker:<worker_id>`` (the worker id
  is the first 12 hex of a connection id), through one small Lua script. ``PUBLISH`` answers
  how many subscribers received it; 0 means the worker's listener is reconnecting, and the
  publish is retried until the deadline.
- The receiving worker acknowledges each delivery id on the publisher's ack channel, and drops
  an id it has already seen; a publish that was not acknowledged (Redis died after it ran, or
  the reply was lost) is published again until the deadline, and never arrives twice. Redis's
  own answer is not enough: killed between its reply to the publisher and its write to the
  subscriber, it reports a receiver that never gets the message.
- The script refuses to publish after the deadline, in Redis's own clock (its offset from ours
  is learnt from every reply), and the publisher waits ``clock_margin`` past it: a command
  that Redis runs late (it was frozen) is a no-op, so a send reported as not delivered is not
  delivered later.

Groups: ``<prefix>:members:<group>`` is the set of workers that have local members, kept by
each worker (and re-registered whenever its listener reconnects); the script publishes to each
member worker's channel, and only workers that got 0 receivers or did not acknowledge are
retried. ``<prefix>:alive:<worker_id>`` is a heartbeat key with a TTL: a worker whose key
expired is gone (removed from the sets; a send to it fails at once). A Redis restarted without
persistence has forgotten all of it: the first command after the restart sets ``<prefix>:boot``
to Redis's time, and for ``restart_grace`` after it a group send waits (the workers are
re-registering) and a missing heartbeat does not mean a dead worker.

redis-py's asyncio client runs on asyncio only. Redis Cluster is not supported (the script
touches keys it computes). docs/deployment.md states the guarantee and the measured windows.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis import asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from panther_ws.brokers._codec import decode_delivery, encode_delivery
from panther_ws.brokers.base import (
    Broker,
    BrokerError,
    Delivery,
    DeliveryHandler,
    DeliveryUnconfirmed,
)
from panther_ws.hosting.primitives import current_backend

logger = logging.getLogger("panther_ws.brokers.redis")

# ARGV: prefix, deadline (Redis ms), restart grace (ms), payload, group ('' for a single send),
# then the target workers (none: every member of the group).
# Returns {Redis ms, 'late'} | {Redis ms, 'booting', end of grace} |
#         {Redis ms, 'ok', published workers, workers with no listener, workers gone}.
_PUBLISH = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local prefix, group = ARGV[1], ARGV[5]
if now > tonumber(ARGV[2]) then return {now, 'late'} end
local boot = tonumber(redis.call('GET', prefix .. ':boot'))
if not boot then
  boot = now
  redis.call('SET', prefix .. ':boot', string.format('%d', now))
end
local booting = now - boot < tonumber(ARGV[3])
local members = prefix .. ':members:' .. group
local targets = {unpack(ARGV, 6)}
if #targets == 0 then
  if booting then return {now, 'booting', boot + tonumber(ARGV[3])} end
  targets = redis.call('SMEMBERS', members)
end
local published, missed, gone = {}, {}, {}
for _, worker in ipairs(targets) do
  if redis.call('PUBLISH', prefix .. ':worker:' .. worker, ARGV[4]) > 0 then
    table.insert(published, worker)
  elseif booting or redis.call('EXISTS', prefix .. ':alive:' .. worker) == 1 then
    table.insert(missed, worker)
  else
    table.insert(gone, worker)
    if group ~= '' then redis.call('SREM', members, worker) end
  end
end
return {now, 'ok', published, missed, gone}
"""

# ARGV: prefix, worker id, heartbeat TTL (ms), then the worker's groups.
_REGISTER = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local prefix, worker = ARGV[1], ARGV[2]
redis.call('SET', prefix .. ':boot', string.format('%d', now), 'NX')
redis.call('SET', prefix .. ':alive:' .. worker, '1', 'PX', ARGV[3])
for index = 4, #ARGV do redis.call('SADD', prefix .. ':members:' .. ARGV[index], worker) end
return now
"""

# A reply slower than this says little about when the script ran: keep the old clock offset.
_CLOCK_SAMPLE_MAX_ROUND_TRIP = 0.05
_RETRY_PAUSE = 0.02  # while a target's listener is reconnecting
_RESEND_AFTER = 0.25  # published but not acknowledged: publish again (the receiver dedupes)
_ACK_BATCH = 1000
# Whether the command ran is unknown after these (except a refused connect), so they are
# retried: ids make a repeat harmless. BusyLoadingError (Redis loads its data) is one of them.
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass
class _Worker:
    """One attached worker: what it must re-register, and the delivery ids it has seen."""

    worker_id: str
    groups: set[str] = field(default_factory=set)
    seen: dict[bytes, float] = field(default_factory=dict)  # id -> monotonic time to forget it
    registered: bool = False
    pubsub: Any = None


@dataclass(eq=False)
class _Pending:
    """A publish waiting for its targets' acknowledgements."""

    acked: set[str] = field(default_factory=set)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def ack(self, worker_id: str) -> None:
        self.acked.add(worker_id)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, workers: set[str], until: float) -> bool:
        with anyio.move_on_after(until - time.monotonic()):
            while not workers <= self.acked:
                await self.changed.wait()
        return workers <= self.acked


class RedisBroker(Broker):
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "panther_ws",
        publish_timeout: float = 2.0,
        clock_margin: float = 0.5,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 0.5,
        heartbeat_interval: float = 1.0,
        restart_grace: float | None = None,
    ) -> None:
        """``publish_timeout`` bounds how long a send keeps trying (it raises after at most
        ``publish_timeout + clock_margin``); ``restart_grace`` (default
        ``max_reconnect_delay + 1``) must cover a listener's reconnect and re-registration."""
        self.url = url
        self.prefix = prefix
        self.publish_timeout = publish_timeout
        self.clock_margin = clock_margin
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.heartbeat_interval = heartbeat_interval
        self.restart_grace = max_reconnect_delay + 1.0 if restart_grace is None else restart_grace
        self._redis: Any = None
        self._scripts: tuple[Any, Any] | None = None
        self._workers: dict[str, _Worker] = {}
        self._pending: dict[bytes, _Pending] = {}
        self._ack_id = b""  # this process's ack channel; drawn at attach, so new after a fork
        self._clock_offset = 0.0  # Redis's clock (s) minus time.monotonic()

    # -- attaching -------------------------------------------------------------------------

    @asynccontextmanager
    async def attach(self, worker_id: str, deliver: DeliveryHandler) -> AsyncIterator[None]:
        if current_backend() != "asyncio":
            raise RuntimeError(
                "RedisBroker uses redis-py's asyncio client and needs the asyncio backend; "
                "run the app on asyncio (uvicorn, hypercorn's asyncio worker)"
            )
        if self._redis is None:
            self._connect_client()
        worker = self._workers[worker_id] = _Worker(worker_id)
        acks_in, acks_out = anyio.create_memory_object_stream[tuple[bytes, bytes]](10_000)
        try:
            try:
                await self._subscribe(worker)
                await self._measure_clock()
                await self._register(worker)
            except Exception as exc:
                raise BrokerError(f"cannot attach to Redis at {self.url}: {exc}") from exc
            async with anyio.create_task_group() as task_group, acks_in, acks_out:
                task_group.start_soon(self._listen, worker, deliver, acks_in)
                task_group.start_soon(self._acknowledge, worker, acks_out)
                task_group.start_soon(self._heartbeat, worker)
                try:
                    yield
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            del self._workers[worker_id]
            with anyio.CancelScope(shield=True):
                await self._unregister(worker)
                if not self._workers:
                    redis, self._redis, self._scripts = self._redis, None, None
                    await redis.aclose()

    def _connect_client(self) -> None:
        # redis-py's own retry would re-send a command that may have run: we retry ourselves,
        # with the deadline and ids that make a repeat harmless.
        self._redis = redis_asyncio.from_url(
            self.url,
            socket_timeout=self.publish_timeout + self.clock_margin,
            socket_connect_timeout=self.publish_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._scripts = (
            self._redis.register_script(_PUBLISH),
            self._redis.register_script(_REGISTER),
        )
        self._ack_id = secrets.token_hex(6).encode()

    def _ack_channel(self, ack_id: bytes) -> bytes:
        return b"%s:ack:%s" % (self.prefix.encode(), ack_id)

    async def _subscribe(self, worker: _Worker) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        worker.pubsub = pubsub
        with anyio.fail_after(self.publish_timeout):
            await pubsub.subscribe(
                f"{self.prefix}:worker:{worker.worker_id}", self._ack_channel(self._ack_id)
            )

    async def _register(self, worker: _Worker) -> None:
        """Heartbeat and group membership in one script; also marks a restarted Redis."""
        assert self._scripts is not None
        ttl = math.ceil(self.heartbeat_interval * 3000)
        with anyio.fail_after(self.publish_timeout):
            sent = time.monotonic()
            now = await self._scripts[1](
                args=[self.prefix, worker.worker_id, ttl, *sorted(worker.groups)]
            )
            self._learn_clock(sent, time.monotonic(), now)
        worker.registered = True

    async def _unregister(self, worker: _Worker) -> None:
        """Leave visibly: senders then fail at once instead of waiting for the heartbeat TTL."""
        try:
            with anyio.fail_after(1.0):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.delete(f"{self.prefix}:alive:{worker.worker_id}")
                    for group in worker.groups:
                        pipe.srem(f"{self.prefix}:members:{group}", worker.worker_id)
                    await pipe.execute()
        except (*_CONNECTION_ERRORS, TimeoutError) as exc:  # the heartbeat TTL cleans up
            logger.debug("could not unregister worker %s: %s", worker.worker_id, exc)
        await _close_quietly(worker.pubsub)

    # -- the listener ------------------------------------------------------------------------

    async def _listen(
        self,
        worker: _Worker,
        deliver: DeliveryHandler,
        acks: MemoryObjectSendStream[tuple[bytes, bytes]],
    ) -> None:
        ack_channel = self._ack_channel(self._ack_id)
        delay = self.reconnect_delay
        while True:
            try:
                while True:
                    message = await worker.pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    if message["channel"] == ack_channel:
                        self._acknowledged(message["data"])
                    else:
                        await self._receive(worker, message["data"], deliver, acks)
            except _CONNECTION_ERRORS as exc:
                logger.warning(
                    "Redis listener of worker %s lost its connection (%s)", worker.worker_id, exc
                )
            while True:
                await _close_quietly(worker.pubsub)
                await anyio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
                try:
                    await self._subscribe(worker)
                    await self._register(worker)
                except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                    logger.debug("Redis listener reconnect failed (%s); retrying", exc)
                    continue
                logger.warning("Redis listener of worker %s is back", worker.worker_id)
                delay = self.reconnect_delay
                break

    async def _receive(
        self,
        worker: _Worker,
        raw: bytes,
        deliver: DeliveryHandler,
        acks: MemoryObjectSendStream[tuple[bytes, bytes]],
    ) -> None:
        delivery_id, deadline, ack_id, body = raw.split(b" ", 3)
        await acks.send((ack_id, delivery_id))  # a repeat is acknowledged again
        now = time.monotonic()
        seen = worker.seen
        while seen:  # ids are kept in arrival order: forget the expired ones from the front
            oldest = next(iter(seen))
            if seen[oldest] > now:
                break
            del seen[oldest]
        if delivery_id in seen:
            return
        # A repeat can be published until the deadline (Redis's clock, in ms).
        seen[delivery_id] = int(deadline) / 1000 - self._clock_offset + self.clock_margin
        try:
            await deliver(decode_delivery(body))
        except Exception:
            logger.exception("delivering a message from Redis failed")

    async def _acknowledge(
        self, worker: _Worker, acks: MemoryObjectReceiveStream[tuple[bytes, bytes]]
    ) -> None:
        """Acknowledge in batches, one PUBLISH per publisher; a lost ack only causes a repeat."""
        async for first in acks:
            batch: defaultdict[bytes, list[bytes]] = defaultdict(list)
            ack_id, delivery_id = first
            batch[ack_id].append(delivery_id)
            for _ in range(_ACK_BATCH):
                try:
                    ack_id, delivery_id = acks.receive_nowait()
                except anyio.WouldBlock:
                    break
                batch[ack_id].append(delivery_id)
            try:
                with anyio.fail_after(self.publish_timeout):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for ack_id, ids in batch.items():
                            pipe.publish(
                                self._ack_channel(ack_id),
                                b" ".join([worker.worker_id.encode(), *ids]),
                            )
                        await pipe.execute()
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                logger.debug("acknowledging %d deliveries failed: %s", len(batch), exc)

    def _acknowledged(self, raw: bytes) -> None:
        worker_id, *ids = raw.decode().split(" ")
        for delivery_id in ids:
            pending = self._pending.get(delivery_id.encode())
            if pending is not None:
                pending.ack(worker_id)

    async def _heartbeat(self, worker: _Worker) -> None:
        """Keep the alive key; re-register in full when a join or leave could not reach Redis."""
        while True:
            await anyio.sleep(self.heartbeat_interval)
            try:
                if worker.registered:
                    with anyio.fail_after(self.heartbeat_interval):
                        await self._redis.set(
                            f"{self.prefix}:alive:{worker.worker_id}",
                            b"1",
                            px=math.ceil(self.heartbeat_interval * 3000),
                        )
                else:
                    await self._register(worker)
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                logger.debug("Redis heartbeat of worker %s failed: %s", worker.worker_id, exc)

    # -- publishing ------------------------------------------------------------------------

    async def _measure_clock(self) -> None:
        """Redis's clock against ours, from the fastest of three ``TIME`` round trips.

        The first commands on a connection are slow (connect, handshake), so one sample could
        be off by its whole round trip; deadlines in Redis time need it within milliseconds.
        """
        samples = []
        with anyio.fail_after(self.publish_timeout):
            for _ in range(3):
                sent = time.monotonic()
                seconds, microseconds = await self._redis.time()
                received = time.monotonic()
                middle = (sent + received) / 2
                samples.append((received - sent, seconds + microseconds / 1e6 - middle))
        self._clock_offset = min(samples)[1]

    def _learn_clock(self, sent: float, received: float, redis_ms: int) -> None:
        if received - sent <= _CLOCK_SAMPLE_MAX_ROUND_TRIP:
            self._clock_offset = redis_ms / 1000 - (sent + received) / 2

    async def _publish(self, delivery: Delivery, group: str, workers: list[str]) -> None:
        """Publish until every target worker acknowledged; else raise saying what is known.

        ``workers`` is the one target of a single send, or empty: every member of ``group``.
        """
        if self._scripts is None:
            raise BrokerError("RedisBroker is not attached: run the App's lifespan startup first")
        deadline = time.monotonic() + self.publish_timeout
        give_up = deadline + self.clock_margin
        redis_deadline = round((deadline + self._clock_offset) * 1000)
        delivery_id = secrets.token_hex(8).encode()
        payload = b"%s %d %s %s" % (
            delivery_id,
            redis_deadline,
            self._ack_id,
            encode_delivery(delivery),
        )
        pending = self._pending[delivery_id] = _Pending()
        published: set[str] = set()  # reached by a publish: arrived, unless Redis died
        ambiguous = False  # a publish was sent but its answer lost: it may have run
        targets = workers
        why = "Redis was not reached"
        try:
            while (now := time.monotonic()) < give_up:
                try:
                    with anyio.fail_after(give_up - now):
                        answer = await self._scripts[0](
                            args=[
                                self.prefix,
                                redis_deadline,
                                round(self.restart_grace * 1000),
                                payload,
                                group,
                                *targets,
                            ]
                        )
                except TimeoutError:
                    why = "Redis did not answer (a late run is refused by the deadline)"
                    break
                except _CONNECTION_ERRORS as exc:
                    why = f"Redis is unreachable ({type(exc).__name__}: {exc})"
                    logger.debug("publishing %s: %s", delivery_id, why)
                    ambiguous = ambiguous or "connecting" not in str(exc)
                    await anyio.sleep(_RETRY_PAUSE)
                    continue
                except Exception as exc:
                    raise BrokerError(
                        f"Redis at {self.url} refused the publish ({type(exc).__name__}: "
                        f"{exc}); the message was not delivered"
                    ) from exc
                self._learn_clock(now, time.monotonic(), int(answer[0]))
                if answer[1] == b"late":
                    why = "Redis ran the publish after its deadline and refused it"
                    break
                if answer[1] == b"booting":
                    why = (
                        f"Redis restarted less than {self.restart_grace} s ago and the workers "
                        "are still re-registering their groups"
                    )
                    grace_end = int(answer[2]) / 1000 - self._clock_offset
                    await anyio.sleep(max(0.0, min(grace_end, deadline) - time.monotonic()))
                    continue
                reached, missed, gone = ([w.decode() for w in ws] for ws in answer[2:5])
                if gone and not group and not (published or ambiguous):
                    raise BrokerError(
                        f"worker {workers[0]} is not running (its heartbeat expired in Redis), "
                        "so its connections are gone; the message was not delivered"
                    )
                published.update(reached)
                if not missed:
                    await pending.wait_for(published, min(now + _RESEND_AFTER, give_up))
                targets = sorted((published - pending.acked) | set(missed))
                if not targets:
                    return
                if missed:
                    why = f"worker(s) {', '.join(missed)} have no listener on Redis (reconnecting)"
                    await anyio.sleep(_RETRY_PAUSE)
                else:
                    why = "it was published but not acknowledged"
        finally:
            del self._pending[delivery_id]
        target = f"group {group!r}" if group else f"worker {workers[0]}"
        unconfirmed = published - pending.acked
        if unconfirmed or ambiguous:
            raise DeliveryUnconfirmed(
                f"could not confirm delivery to {target} through Redis at {self.url} within "
                f"{self.publish_timeout} s: {why}; it may have arrived"
                + (f" at worker(s) {', '.join(sorted(unconfirmed))}" if unconfirmed else "")
            )
        partly = " (the group's other workers did receive it)" if pending.acked else ""
        raise BrokerError(
            f"could not deliver to {target} through Redis at {self.url} within "
            f"{self.publish_timeout} s: {why}; the message was not delivered{partly}"
        )

    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        await self._publish(delivery, "", [worker_id])

    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        await self._publish(delivery, group, [])

    async def join_group(self, worker_id: str, group: str) -> None:
        await self._change_membership(worker_id, group, joined=True)

    async def leave_group(self, worker_id: str, group: str) -> None:
        await self._change_membership(worker_id, group, joined=False)

    async def _change_membership(self, worker_id: str, group: str, *, joined: bool) -> None:
        """Never raises: a change Redis missed is re-registered by the heartbeat.

        A worker that is wrongly listed only receives deliveries it has no member for.
        """
        worker = self._workers.get(worker_id)
        if worker is None:
            return
        key = f"{self.prefix}:members:{group}"
        try:
            with anyio.fail_after(self.publish_timeout):
                if joined:
                    worker.groups.add(group)
                    await self._redis.sadd(key, worker_id)
                else:
                    worker.groups.discard(group)
                    await self._redis.srem(key, worker_id)
        except (*_CONNECTION_ERRORS, TimeoutError) as exc:
            logger.warning(
                "Redis missed worker %s %s group %r (%s); re-registering",
                worker_id,
                "joining" if joined else "leaving",
                group,
                exc,
            )
            worker.registered = False


async def _close_quietly(pubsub: Any) -> None:
    try:
        await pubsub.aclose()
    except Exception as exc:
        logger.debug("closing a broken Redis subscription: %s", exc)
