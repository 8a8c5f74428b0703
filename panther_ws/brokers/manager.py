"""ManagerBroker: many worker processes on one machine, without Redis (gunicorn --preload).

Create it at import time of your app module: with ``gunicorn --preload`` that happens once,
in the master, which starts a small hub process; every worker forked afterwards connects to
the hub over a Unix socket when its App starts. A send is one message to the hub, which
forwards it to the one worker holding the connection; a group send is one message, which the
hub forwards to every worker with members in that group.

Limits: one machine (a Unix socket); the master must stay alive (the hub exits with it); a
delivery to a worker that is restarting is lost. Without ``--preload`` every gunicorn worker
would create its own hub and messages would silently stay inside each worker, so that case
is detected and refused with an error that says to add ``--preload`` (or use RedisBroker).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from panther_ws.brokers.base import Broker, BrokerError, Delivery, DeliveryHandler


class ManagerBroker(Broker):
    def __init__(
        self,
        *,
        socket_path: str | None = None,
        start_hub: bool = True,
        start_timeout: float = 10.0,
    ) -> None:
        """``start_hub=False`` with a ``socket_path`` joins a hub that another process runs."""
        self._creator_pid = os.getpid()
        self._stream: anyio.abc.ByteStream | None = None
        self._lock: anyio.Lock | None = None
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
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._listen, stream, deliver)
                try:
                    yield
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            self._stream = None
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _listen(self, stream: anyio.abc.ByteStream, deliver: DeliveryHandler) -> None:
        buffer = bytearray()
        while True:
            try:
                message = await read_frame(stream, buffer)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the hub is gone with the master: nothing more will arrive
            await deliver(decode_delivery(message["payload"]))

    async def _send(self, op: str, key: str, delivery: Delivery | None = None) -> None:
        if self._stream is None or self._lock is None:
            raise BrokerError("ManagerBroker is not attached: run the App's lifespan startup first")
        message = {"op": op, "key": key}
        if delivery is not None:
            message["payload"] = encode_delivery(delivery).decode()
        try:
            async with self._lock:
                await self._stream.send(frame(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise BrokerError(f"the ManagerBroker hub is unreachable: {exc}") from exc

    async def publish_to_worker(self, worker_id: str, delivery: Delivery) -> None:
        await self._send("to_worker", worker_id, delivery)

    async def publish_to_group(self, group: str, delivery: Delivery) -> None:
        await self._send("to_group", group, delivery)

    async def join_group(self, worker_id: str, group: str) -> None:
        await self._send("join", group)

    async def leave_group(self, worker_id: str, group: str) -> None:
        await self._send("leave", group)

    def close(self) -> None:
        """Stop the hub (it also stops by itself when its parent process exits)."""
        if self._hub is None:
            return
        if self._hub.poll() is None:
            self._hub.terminate()
            self._hub.wait(timeout=5)
        remove_socket(self.socket_path)
