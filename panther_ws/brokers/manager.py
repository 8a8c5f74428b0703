"""ManagerBroker: many worker processes on one machine, without Redis (gunicorn --preload).

Create it at import time of your app module: with ``gunicorn --preload`` that happens once,
in the master, which starts a small hub process; every worker forked afterwards connects to
the hub over a Unix socket when its App starts. A send is one message to the hub, which
forwards it to the one worker holding the connection; a group send is one message, which the
hub forwards to every worker with members in that group.

A publish returns once the hub has written it to the target workers' sockets (it answers
every publish, in order), and raises :class:`BrokerError` when the hub is gone or knows no such
worker, or :class:`DeliveryUnconfirmed` when the hub went away or froze before answering.

Limits: one machine (a Unix socket); the master must stay alive (the hub exits with it).
Without ``--preload`` every gunicorn worker would create its own hub and messages would
silently stay inside each worker, so that case is detected and refused with an error that
says to add ``--preload`` (or use RedisBroker).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc

from panther_ws.brokers._codec import decode_delivery, encode_delivery
from panther_ws.brokers._hub import (
    PRIVATE_DIRECTORY_PREFIX,
    frame,
    read_frame,
    remove_socket,
)
from panther_ws.brokers.base import (
    Broker,
    BrokerError,
    Delivery,
    DeliveryHandler,
    DeliveryUnconfirmed,
)

logger = logging.getLogger("panther_ws.brokers.manager")
_HUB_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


@dataclass(eq=False)
class _Answer:
    """The hub's answer to one publish: True delivered, False no such worker, None hub gone."""

    arrived: anyio.Event = field(default_factory=anyio.Event)
    delivered: bool | None = None

    def set(self, delivered: bool | None) -> None:
        self.delivered = delivered
        self.arrived.set()


class ManagerBroker(Broker):
    def __init__(
        self,
        *,
        socket_path: str | None = None,
        start_hub: bool = True,
        start_timeout: float = 10.0,
        publish_timeout: float = 2.0,
    ) -> None:
        """``start_hub=False`` with a ``socket_path`` joins a hub that another process runs;
        ``publish_timeout`` bounds the wait for the hub's answer to a publish."""
        self._creator_pid = os.getpid()
        self.publish_timeout = publish_timeout
        self._stream: anyio.abc.ByteStream | None = None
        self._lock: anyio.Lock | None = None
        self._answers: deque[_Answer] = deque()  # the hub answers publishes in order
        self._hub: subprocess.Popen[bytes] | None = None
        if not start_hub:
            if socket_path is None:
                raise ValueError("ManagerBroker(start_hub=False) needs the hub's socket_path")
            self.socket_path = socket_path
            return
        directory = tempfile.mkdtemp(prefix=PRIVATE_DIRECTORY_PREFIX)
        self.socket_path = socket_path or str(Path(directory) / "hub.sock")
        self._hub = subprocess.Popen(
            [sys.executable, "-m", "panther_ws.brokers._hub", self.socket_path, str(os.getpid())],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + start_timeout
        while not os.path.exists(self.socket_path):
            if self._hub.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"the ManagerBroker hub did not start at {self.socket_path}")
            time.sleep(0.01)

    def _check_forked(self) -> None:
        in_gunicorn = "gunicorn" in os.path.basename(sys.argv[0]) or any(
            "gunicorn" in argument for argument in sys.argv[:2]
        )
        if in_gunicorn and self._hub is not None and os.getpid() == self._creator_pid:
            raise BrokerError(
                "ManagerBroker was created inside this gunicorn worker, not in the master: "
                "run gunicorn with --preload so that all workers share one hub "
                "(or use RedisBroker)"
            )

    @asynccontextmanager
    async def attach(self, worker_id: str, deliver: DeliveryHandler) -> AsyncIterator[None]:
        self._check_forked()
        try:
            stream = await anyio.connect_unix(self.socket_path)
        except OSError as exc:
            raise BrokerError(
                f"cannot reach the ManagerBroker hub at {self.socket_path}: {exc}"
            ) from exc
        self._stream, self._lock = stream, anyio.Lock()
        await stream.send(frame({"op": "hello", "key": worker_id}))
        self._answers.clear()
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._listen, stream, deliver)
                try:
                    yield
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            self._stream = None
            self._hub_gone()
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _listen(self, stream: anyio.abc.ByteStream, deliver: DeliveryHandler) -> None:
        buffer = bytearray()
        while True:
            try:
                message = await read_frame(stream, buffer)
            except _HUB_GONE:
                logger.error(
                    "the ManagerBroker hub at %s is gone (did the master exit?): this worker "
                    "receives no more deliveries, and its sends fail",
                    self.socket_path,
                )
                self._hub_gone()
                return
            if "ack" in message:
                self._answers.popleft().set(bool(message["ack"]))
            else:
                await deliver(decode_delivery(message["payload"]))

    def _hub_gone(self) -> None:
        while self._answers:
            self._answers.popleft().set(None)

    async def _send(self, message: dict[str, str], answer: _Answer | None = None) -> None:
        if self._stream is None or self._lock is None:
            raise BrokerError("ManagerBroker is not attached: run the App's lifespan startup first")
        try:
            async with self._lock:
                if answer is not None:  # before sending: the answer can come back at once
                    self._answers.append(answer)
                await self._stream.send(frame(message))
        except _HUB_GONE as exc:
            if answer is not None and answer in self._answers:
                self._answers.remove(answer)
            raise BrokerError(
                f"the ManagerBroker hub at {self.socket_path} is unreachable "
                f"({type(exc).__name__}: {exc}); the message was not delivered"
            ) from exc

    async def _publish(self, op: str, key: str, delivery: Delivery) -> None:
        answer = _Answer()
        await self._send(
            {"op": op, "key": key, "payload": encode_delivery(delivery).decode()}, answer
        )
        with anyio.move_on_after(self.publish_timeout):
            await answer.arrived.wait()
        if answer.delivered:
            return
        if answer.delivered is False:
            raise BrokerError(
                f"no worker {key} is connected to the ManagerBroker hub (it has stopped); "
                "the message was not delivered"
            )
        raise DeliveryUnconfirmed(
            f"the ManagerBroker hub at {self.socket_path} "
            + (
                "went away"
                if answer.arrived.is_set()
                else f"did not answer in {self.publish_timeout} s"
            )
            + " after the message was sent to it; it may have arrived"
        )

    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        await self._publish("to_worker", worker_id, delivery)

    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        await self._publish("to_group", group, delivery)

    async def join_group(self, worker_id: str, group: str) -> None:
        await self._send({"op": "join", "key": group})

    async def leave_group(self, worker_id: str, group: str) -> None:
        await self._send({"op": "leave", "key": group})

    def close(self) -> None:
        """Stop the hub (it also stops by itself when its parent process exits)."""
        if self._hub is None:
            return
        if self._hub.poll() is None:
            self._hub.terminate()
            self._hub.wait(timeout=5)
        remove_socket(self.socket_path)
