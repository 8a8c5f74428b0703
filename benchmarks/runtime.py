"""The runtime against Starlette and Panther 5, in one run.

    python benchmarks/runtime.py

1. Echo messages/s through one connection, the same raw in-memory ASGI driver for all three.
2. One message to a group of 1,000 and 10,000 connections: our ``send_message_to_group``
   vs Panther's documented way, a loop of ``send_message_to_websocket`` over stored ids;
   timed until every connection has received it.
3. Memory per idle connection (tracemalloc), net of the driver's own task and queue.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import statistics
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from panther_ws import App, GenericWebsocket

ROUND_TRIPS = 5000


class Echo(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        await self.send(data)


class Member(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()
        await self.join_group("everyone")
        await self.send(self.connection_id)


async def starlette_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


def panther_app() -> Any:
    from panther import Panther
    from panther.websocket import GenericWebsocket as PantherWebsocket

    class PantherEcho(PantherWebsocket):
        async def connect(self, **kwargs):  # type: ignore[no-untyped-def]
            await self.accept()

        async def receive(self, data):  # type: ignore[no-untyped-def]
            await self.send(data)

    class PantherMember(PantherWebsocket):
        async def connect(self, **kwargs):  # type: ignore[no-untyped-def]
            await self.accept()
            await self.send(self.connection_id)

    return Panther(
        __name__, configs=__name__, urls={"ws/echo/": PantherEcho, "ws/member/": PantherMember}
    )


class Driver:
    """One connection driven through two asyncio.Queues: the cheapest possible ASGI server."""

    def __init__(self, app: Any, path: str) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.to_client: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "subprotocols": [],
            "client": ("127.0.0.1", 1),
            "server": ("bench", 80),
            "scheme": "ws",
            "root_path": "",
            "state": {},
            "asgi": {"version": "3.0", "spec_version": "2.4"},
        }
        self.task = asyncio.ensure_future(app(scope, self.to_app.get, self.to_client.put))

    async def open(self) -> None:
        await self.to_app.put({"type": "websocket.connect"})
        accepted = await self.to_client.get()
        assert accepted["type"] == "websocket.accept", accepted

    async def close(self) -> None:
        await self.to_app.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 10)


async def echo_rate(app: Any, path: str) -> float:
    driver = Driver(app, path)
    await driver.open()
    start = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        await driver.to_app.put({"type": "websocket.receive", "text": "x" * 32})
        await driver.to_client.get()
    elapsed = time.perf_counter() - start
    await driver.close()
    return ROUND_TRIPS / elapsed


async def fan_out_ours(count: int) -> float:
    app = App({"ws/member/": Member})
    drivers = [Driver(app, "/ws/member/") for _ in range(count)]
    for driver in drivers:
        await driver.open()
        await driver.to_client.get()  # its connection_id
    start = time.perf_counter()
    await app.send_message_to_group("everyone", "hello")
    for driver in drivers:
        await driver.to_client.get()
    elapsed = time.perf_counter() - start
    for driver in drivers:
        await driver.close()
    return elapsed


async def fan_out_panther(app: Any, count: int) -> float:
    from panther.websocket import send_message_to_websocket

    drivers = [Driver(app, "/ws/member/") for _ in range(count)]
    ids = []
    for driver in drivers:
        await driver.open()
        ids.append((await driver.to_client.get())["text"])
    start = time.perf_counter()
    for connection_id in ids:  # Panther's documented way to reach many connections
        await send_message_to_websocket(connection_id, "hello")
    for driver in drivers:
        await asyncio.wait_for(driver.to_client.get(), 120)
    elapsed = time.perf_counter() - start
    for driver in drivers:
        await driver.close()
    return elapsed


async def idle_bytes(app: Any, path: str, count: int = 2000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    drivers = [Driver(app, path) for _ in range(count)]
    for driver in drivers:
        await driver.open()
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    for driver in drivers:
        await driver.close()
    return used / count


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()


async def start_lifespan(app: Any) -> asyncio.Future[None]:
    """Panther starts its websocket listener in lifespan startup: run it."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, replies.put))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(replies.get(), 30)
    return task


async def main() -> None:
    panther = panther_app()
    logging.disable(logging.INFO)  # Panther logs every connection at DEBUG/INFO
    lifespan = await start_lifespan(panther)
    starlette = Starlette(routes=[WebSocketRoute("/ws/echo/", starlette_echo)])
    ours = App({"ws/echo/": Echo})
    print(f"echo, {ROUND_TRIPS} x 32 B on one connection (median of 7, interleaved):")
    apps = {"panther_ws App": ours, "Starlette": starlette, "Panther 5": panther}
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(7):  # interleaved, so drift on a noisy machine hits all three alike
        for name, app in apps.items():
            samples[name].append(await echo_rate(app, "/ws/echo/"))
    rates = {name: statistics.median(values) for name, values in samples.items()}
    for name, rate in rates.items():
        print(f"  {name:<16} {rate:>10,.0f} msgs/s  {rate / rates['Starlette']:.2f}x Starlette")

    print("one message to every member of a group (median of 3):")
    for count in (1000, 10_000):
        ours_time = statistics.median([await fan_out_ours(count) for _ in range(3)])
        theirs = statistics.median(
            [await fan_out_panther(panther, count) for _ in range(3 if count <= 1000 else 1)]
        )
        print(
            f"  {count:>6} connections: ours {ours_time * 1000:8.1f} ms, Panther loop "
            f"{theirs * 1000:9.1f} ms -> {theirs / ours_time:6.1f}x faster"
        )

    baseline = await idle_bytes(bare_app, "/")
    ours_bytes = await idle_bytes(App({"ws/echo/": Echo}), "/ws/echo/")
    lifespan.cancel()
    print(
        f"memory per idle connection: {ours_bytes - baseline:,.0f} B for the App "
        f"({ours_bytes:,.0f} B with the driver's task and queue)"
    )


if __name__ == "__main__":
    asyncio.run(main())
