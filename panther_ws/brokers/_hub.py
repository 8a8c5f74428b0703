"""The ManagerBroker hub: a small process that routes deliveries between worker processes.

Run as ``python -m panther_ws.brokers._hub SOCKET_PATH PARENT_PID``. It listens on a Unix
socket; each worker says hello with its worker id, joins and leaves groups, and publishes to
a worker or a group. Every publish is answered, in order, with ``{"ack": true}`` once it was
written to the target workers' sockets, or ``{"ack": false}`` when no such worker is
connected, so a sender knows. It exits when its parent (the gunicorn master) is gone.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from typing import Any

import anyio
import anyio.abc
import orjson

_LENGTH = struct.Struct("!I")
PRIVATE_DIRECTORY_PREFIX = "panther-ws-hub-"


async def read_frame(stream: anyio.abc.ByteStream, buffer: bytearray) -> dict[str, Any]:
    while True:
        if len(buffer) >= 4:
            (size,) = _LENGTH.unpack_from(buffer)
            if len(buffer) >= 4 + size:
                body = bytes(buffer[4 : 4 + size])
                del buffer[: 4 + size]
                return dict(orjson.loads(body))
        buffer += await stream.receive(65536)


def frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return _LENGTH.pack(len(body)) + body


class Hub:
    def __init__(self) -> None:
        self.workers: dict[str, anyio.abc.ByteStream] = {}
        self.groups: dict[str, set[str]] = {}

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        buffer = bytearray()
        worker_id = None
        try:
            while True:
                message = await read_frame(stream, buffer)
                op, key = message["op"], message["key"]
                if op == "hello":
                    worker_id = key
                    self.workers[key] = stream
                elif op == "join" and worker_id is not None:
                    self.groups.setdefault(key, set()).add(worker_id)
                elif op == "leave" and worker_id is not None:
                    self.groups.get(key, set()).discard(worker_id)
                elif op == "to_worker":
                    delivered = await self._send(key, message["payload"])
                    await stream.send(frame({"ack": delivered}))
                elif op == "to_group":
                    for member in tuple(self.groups.get(key, ())):
                        await self._send(member, message["payload"])
                    await stream.send(frame({"ack": True}))
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            if worker_id is not None:
                self.workers.pop(worker_id, None)
                for members in self.groups.values():
                    members.discard(worker_id)

    async def _send(self, worker_id: str, payload: str) -> bool:
        stream = self.workers.get(worker_id)
        if stream is None:
            return False
        try:
            await stream.send(frame({"payload": payload}))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.workers.pop(worker_id, None)
            return False
        return True


async def main(path: str, parent: int) -> None:
    # The socket file appears at bind(), before listen(): a worker connecting in between is
    # refused. So it is bound under another name and appears under its own only once it
    # listens (ManagerBroker waits for the file).
    listening = path + ".binding"
    listener = await anyio.create_unix_listener(listening)
    os.replace(listening, path)
    hub = Hub()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, hub.handle)
        # No event tells a process that its parent died: poll, cheaply.
        while os.getppid() == parent:  # noqa: ASYNC110
            await anyio.sleep(0.5)
        task_group.cancel_scope.cancel()
    remove_socket(path)


def remove_socket(path: str) -> None:
    """Remove the hub's socket, and the directory ManagerBroker made for it if it did."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    directory = os.path.dirname(path)
    if os.path.basename(directory).startswith(PRIVATE_DIRECTORY_PREFIX):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
