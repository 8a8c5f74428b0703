"""The test harness against other ways to test an ASGI websocket app, in one run.

    python benchmarks/harness.py

Echo round trips (1,000 x 32 B text on one connection; 100 x 64 KiB bytes) and
connect+accept+close cycles, for: a raw floor (the app called through two asyncio.Queues,
and on trio through two unbounded memory channels), our client in direct and wire mode,
async-asgi-testclient, httpx-ws's ASGIWebSocketTransport and Starlette's TestClient. Medians
of 7 runs, every client taking its turn in each round; ratios to the asyncio floor, and for
trio rows also to the trio floor.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import anyio
import httpx
from _timing import interleaved_medians
from async_asgi_testclient import TestClient as AsyncAsgiTestClient
from httpx_ws import aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from servers.echo_asgi import app as echo
from starlette.testclient import TestClient as StarletteTestClient

from panther_ws_testing import WebsocketTestClient

SMALL, LARGE, CYCLES = ("x" * 32, 1000), (b"y" * 65536, 100), 200


# -- the floor: two queues and nothing else ----------------------------------------


async def _echo_through(to_app: Any, to_client: Any, payload: Any, count: int) -> None:
    """The client's side of the floor: the app's queues and nothing else."""
    await to_app({"type": "websocket.connect"})
    await to_client()
    key = "text" if isinstance(payload, str) else "bytes"
    for _ in range(count):
        await to_app({"type": "websocket.receive", key: payload})
        await to_client()
    await to_app({"type": "websocket.disconnect", "code": 1000})


async def floor_session(payload: Any, count: int) -> None:
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    to_client: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(echo({"type": "websocket"}, to_app.get, to_client.put))
    await _echo_through(to_app.put, to_client.get, payload, count)
    await task


async def trio_floor_session(payload: Any, count: int) -> None:
    import trio

    to_app_send, to_app = trio.open_memory_channel[dict[str, Any]](math.inf)
    to_client_send, to_client = trio.open_memory_channel[dict[str, Any]](math.inf)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo, {"type": "websocket"}, to_app.receive, to_client_send.send)
        await _echo_through(to_app_send.send, to_client.receive, payload, count)


async def floor_cycles(session: Any = floor_session) -> None:
    for _ in range(CYCLES):
        await session("x", 0)


# -- ours ------------------------------------------------------------------------------------


async def ours(payload: Any, count: int, wire: bool) -> None:
    async with WebsocketTestClient(echo, wire=wire) as client, client.connect("/") as ws:
        for _ in range(count):
            await ws.send(payload)
            await ws.receive()


async def ours_cycles(wire: bool) -> None:
    async with WebsocketTestClient(echo, wire=wire) as client:
        for _ in range(CYCLES):
            async with client.connect("/"):
                pass


# -- peers -----------------------------------------------------------------------------------


async def async_asgi(payload: Any, count: int) -> None:
    async with AsyncAsgiTestClient(echo) as client, client.websocket_connect("/") as ws:
        for _ in range(count):
            if isinstance(payload, str):
                await ws.send_text(payload)
            else:
                await ws.send_bytes(payload)
            await ws.receive_text() if isinstance(payload, str) else await ws.receive_bytes()


async def async_asgi_cycles() -> None:
    async with AsyncAsgiTestClient(echo) as client:
        for _ in range(CYCLES):
            async with client.websocket_connect("/"):
                pass


async def httpx_ws(payload: Any, count: int) -> None:
    async with (
        httpx.AsyncClient(transport=ASGIWebSocketTransport(echo), base_url="http://t") as http,
        aconnect_ws("/", http) as ws,
    ):
        for _ in range(count):
            if isinstance(payload, str):
                await ws.send_text(payload)
                await ws.receive_text()
            else:
                await ws.send_bytes(payload)
                await ws.receive_bytes()


async def httpx_ws_cycles() -> None:
    async with httpx.AsyncClient(
        transport=ASGIWebSocketTransport(echo), base_url="http://t"
    ) as http:
        for _ in range(CYCLES):
            async with aconnect_ws("/", http):
                pass


def starlette(payload: Any, count: int) -> None:
    with StarletteTestClient(echo) as client, client.websocket_connect("/") as ws:
        for _ in range(count):
            if isinstance(payload, str):
                ws.send_text(payload)
                ws.receive_text()
            else:
                ws.send_bytes(payload)
                ws.receive_bytes()


def starlette_cycles() -> None:
    with StarletteTestClient(echo) as client:
        for _ in range(CYCLES):
            with client.websocket_connect("/"):
                pass


def run(coroutine_function: Any, *args: Any, backend: str = "asyncio") -> Any:
    return lambda: anyio.run(coroutine_function, *args, backend=backend)


def main() -> None:
    rows = {
        "floor (2 asyncio.Queue)": (
            run(floor_session, *SMALL),
            run(floor_session, *LARGE),
            run(floor_cycles),
        ),
        "ours direct (asyncio)": (
            run(ours, *SMALL, False),
            run(ours, *LARGE, False),
            run(ours_cycles, False),
        ),
        "floor (2 trio channels)": (
            run(trio_floor_session, *SMALL, backend="trio"),
            run(trio_floor_session, *LARGE, backend="trio"),
            run(floor_cycles, trio_floor_session, backend="trio"),
        ),
        "ours direct (trio)": (
            run(ours, *SMALL, False, backend="trio"),
            run(ours, *LARGE, False, backend="trio"),
            run(ours_cycles, False, backend="trio"),
        ),
        "ours wire (asyncio)": (
            run(ours, *SMALL, True),
            run(ours, *LARGE, True),
            run(ours_cycles, True),
        ),
        "async-asgi-testclient": (
            run(async_asgi, *SMALL),
            run(async_asgi, *LARGE),
            run(async_asgi_cycles),
        ),
        "httpx-ws transport": (run(httpx_ws, *SMALL), run(httpx_ws, *LARGE), run(httpx_ws_cycles)),
        "starlette TestClient": (
            lambda: starlette(*SMALL),
            lambda: starlette(*LARGE),
            starlette_cycles,
        ),
    }
    columns = [
        interleaved_medians(
            {
                name: (_no_setup, lambda _, f=functions[column]: f())
                for name, functions in rows.items()
            },
            repeat=7,
        )
        for column in range(3)
    ]
    results = {name: [column[name] for column in columns] for name in rows}
    floor = results["floor (2 asyncio.Queue)"]
    trio_floor = results["floor (2 trio channels)"]
    print(
        f"{'client':<26} {'32 B rt/s':>10} {'x floor':>8} {'64 KiB rt/s':>12} {'x floor':>8} "
        f"{'cycles/s':>9} {'x floor':>8}   (trio rows: x trio floor)"
    )
    for name, (small, large, cycles) in results.items():
        extra = ""
        if "trio" in name:
            extra = (
                f"   ({small / trio_floor[0]:.2f}x, {large / trio_floor[1]:.2f}x, "
                f"{cycles / trio_floor[2]:.2f}x)"
            )
        print(
            f"{name:<26} {SMALL[1] / small:>10,.0f} {small / floor[0]:>7.2f}x "
            f"{LARGE[1] / large:>12,.0f} {large / floor[1]:>7.2f}x "
            f"{CYCLES / cycles:>9,.0f} {cycles / floor[2]:>7.2f}x{extra}"
        )


def _no_setup() -> None:
    return None


if __name__ == "__main__":
    main()
