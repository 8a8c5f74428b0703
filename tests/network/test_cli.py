"""``panther-ws serve`` and ``panther-ws connect`` as a user runs them: real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from panther_ws.client import connect
from panther_ws_testing import WebsocketRejected
from tests.network.test_app_exceptions import only_that_connection_ends
from tests.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4 * 1024 * 1024

pytestmark = pytest.mark.anyio


@contextmanager
def serve_process(backend: str, *options: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m panther_ws serve tests.network.apps:raising_app`` on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "panther_ws", "serve", "tests.network.apps:raising_app"),
            *("--port", str(port), "--backend", backend, *options),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


async def test_no_app_exception_stops_panther_ws_serve_only_a_signal_does(
    anyio_backend: str,
) -> None:
    with serve_process(anyio_backend) as (port, process):
        for raised in ("KeyboardInterrupt", "SystemExit", "CancelledError"):
            for when in ("before", "after"):
                await only_that_connection_ends(f"ws://127.0.0.1:{port}", raised, when)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0
    log = errors.decode()
    assert log.count("exception in the ASGI app") == 6
    for raised in ("KeyboardInterrupt", "SystemExit: 3", "CancelledError"):
        assert f"\n{raised}" in log or f".{raised}" in log  # each traceback's last line


async def test_limits_on_the_command_line_apply(anyio_backend: str) -> None:
    options = ["--max-handshakes", "1", "--handshake-timeout", "30", "--max-connections", "1"]
    options += ["--max-message-size", str(LIMIT)]
    with serve_process(anyio_backend, *options) as (port, _):
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.settimeout(5)
            url = f"ws://127.0.0.1:{port}/echo"
            async with connect(url, max_message_size=LIMIT) as ws:  # drops the idle socket
                assert idle.recv(1) == b""  # long before the 30 s handshake timeout
                with pytest.raises(WebsocketRejected) as rejected:
                    async with connect(f"ws://127.0.0.1:{port}/echo"):
                        pass
                assert rejected.value.status_code == 503
                await ws.send("x" * 3_000_000)  # over the default 1 MiB
                assert await ws.receive() == "x" * 3_000_000


async def test_connect_reports_a_hostile_upgrade_response_in_one_line() -> None:
    async def hostile(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"
            )
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, hostile)
        with anyio.fail_after(20):
            result = await anyio.run_process(
                [sys.executable, "-m", "panther_ws", "connect", f"ws://127.0.0.1:{port}/"],
                cwd=ROOT,
                check=False,
            )
        task_group.cancel_scope.cancel()
    assert result.returncode == 1
    [line] = result.stderr.decode().splitlines()  # no traceback
    assert line.startswith("error: ")
    assert "accept" in line.lower()
