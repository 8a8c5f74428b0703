"""Interoperability with peers nobody here wrote: the websockets library and uvicorn."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.server import serve as websockets_serve

from panther_ws.client import connect
from tests.network.test_server_and_client import running
from tests.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@pytest.mark.anyio
@asyncio_only
async def test_websockets_client_against_our_server(anyio_backend: str) -> None:
    async with running() as server:
        async with websockets.connect(
            f"ws://127.0.0.1:{server.port}/x", subprotocols=["chat"]
        ) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat"
            await ws.send("from websockets")
            assert await ws.recv() == "from websockets"
            await ws.send(b"\x01" * 100_000)
            assert await ws.recv() == b"\x01" * 100_000


@pytest.mark.anyio
@asyncio_only
async def test_our_client_against_the_websockets_server(anyio_backend: str) -> None:
    async def echo(connection: websockets.asyncio.server.ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with websockets_serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("hello websockets")
            assert await ws.receive() == "hello websockets"
            await ws.send(b"\x02" * 100_000)
            assert await ws.receive() == b"\x02" * 100_000


@pytest.fixture
def uvicorn_app_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--ws",
            "wsproto",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "examples.chat:app",
        ],
        cwd=ROOT,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.anyio
async def test_our_client_against_uvicorn_hosting_a_panther_ws_app(uvicorn_app_port: int) -> None:
    url = f"ws://127.0.0.1:{uvicorn_app_port}/ws/chat/lobby/?name=ann"
    async with connect(url) as ws:
        assert await ws.receive_json() == {"joined": "ann", "here": ["ann"]}
        await ws.send("hi from our client")
        assert await ws.receive_json() == {"from": "ann", "text": "hi from our client"}


@pytest.fixture
def cli_server_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panther_ws",
            "serve",
            "tests.network.apps:echo_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()  # SIGTERM: graceful shutdown
        assert process.wait(timeout=15) == 0


def test_cli_connect_sends_stdin_lines_and_prints_messages(cli_server_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "panther_ws", "connect", f"ws://127.0.0.1:{cli_server_port}/echo"],
        input=b"first line\nsecond line\n",
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["first line", "second line"]


def test_cli_connect_reports_a_refusal(cli_server_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "panther_ws", "connect", f"ws://127.0.0.1:{cli_server_port}/reject"],
        input=b"",
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "HTTP 403" in result.stderr.decode()


def test_cli_serve_rejects_a_bad_target() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "panther_ws", "serve", "nonexistent_module:app"],
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "cannot import 'nonexistent_module'" in result.stderr.decode()
