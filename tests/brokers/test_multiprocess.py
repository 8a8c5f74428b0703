"""Real gunicorn workers (uvicorn-worker): a handler in one worker reaches another's connection.

Once with RedisBroker, once with ManagerBroker under --preload; clients are real sockets on
127.0.0.1 and keep connecting until two land on different worker processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from panther_ws.client import ClientSession, connect
from tests.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


def _gunicorn(
    port: int, env: dict[str, str], preload: bool, stderr: int | None = None
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "3",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
    ]
    if preload:
        command.append("--preload")
    command.append("tests.brokers.apps.multiworker:app")
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stderr=stderr)


@pytest.fixture(params=["redis", "manager"])
def workers(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    env = {"PANTHER_WS_TEST_BROKER": request.param}
    if request.param == "redis":
        env["PANTHER_WS_TEST_REDIS_URL"] = request.getfixturevalue("redis_url")
    process = _gunicorn(port, env, preload=request.param == "manager")
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _two_workers(stack: AsyncExitStack, port: int) -> tuple[Any, ...]:
    """Open connections until two are held by different worker processes."""
    seen: dict[int, tuple[ClientSession, str]] = {}
    for _ in range(200):  # each connect is bounded by its own timeouts
        ws = await stack.enter_async_context(connect(f"ws://127.0.0.1:{port}/ws/probe/"))
        hello = await ws.receive_json()
        seen.setdefault(hello["pid"], (ws, hello["connection_id"]))
        if len(seen) == 2:
            break
        # Workers race for each accept; an idle pause lets another one win the next.
        await anyio.sleep(0.05)
    assert len(seen) == 2, "200 connections all landed on one worker"
    (first, first_id), (second, second_id) = seen.values()
    return first, first_id, second, second_id


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_send_close_and_group_across_worker_processes(
    anyio_backend: str, workers: int
) -> None:
    async with AsyncExitStack() as stack:
        first, first_id, second, second_id = await _two_workers(stack, workers)
        await first.send({"op": "send", "to": second_id, "data": {"hello": "from another worker"}})
        assert await second.receive_json() == {"hello": "from another worker"}
        await second.send({"op": "group", "data": "to everyone"})
        assert await _next_text(first, "to everyone")
        assert await _next_text(second, "to everyone")
        await first.send({"op": "close", "to": second_id})
        assert await second.wait_closed() == (4005, "closed by another worker")
        del first_id


async def _next_text(ws: ClientSession, expected: str) -> bool:
    while True:
        if await ws.receive() == expected:
            return True


def test_manager_broker_without_preload_says_so() -> None:
    port = free_port()
    process = _gunicorn(
        port, {"PANTHER_WS_TEST_BROKER": "manager"}, preload=False, stderr=subprocess.PIPE
    )
    try:
        _, errors = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
    assert process.returncode != 0
    assert b"run gunicorn with --preload" in errors


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_manager_broker_routes_in_one_process(anyio_backend: str) -> None:
    from panther_ws.brokers import Delivery, ManagerBroker

    broker = ManagerBroker()
    received: list[Delivery] = []
    both_arrived = anyio.Event()

    async def deliver(delivery: Delivery) -> None:
        received.append(delivery)
        if len(received) == 2:
            both_arrived.set()

    try:
        async with broker.attach("a" * 12, deliver):
            await broker.join_group("a" * 12, "room")
            await broker.publish_to_worker(
                "a" * 12, Delivery("send", connection_id="a" * 32, data=b"\x00")
            )
            await broker.publish_to_group("room", Delivery("close", group="room", code=4000))
            with anyio.fail_after(5):
                await both_arrived.wait()
    finally:
        broker.close()
    assert received == [
        Delivery("send", connection_id="a" * 32, data=b"\x00"),
        Delivery("close", group="room", code=4000),
    ]
