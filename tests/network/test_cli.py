"""``panther-ws serve`` and ``panther-ws connect`` as a user runs them: real processes."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from panther_ws.client import connect
from panther_ws_testing import WebsocketRejected
from tests.network.certs import self_signed
from tests.network.test_app_exceptions import only_that_connection_ends
from tests.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4 * 1024 * 1024

pytestmark = pytest.mark.anyio


@contextmanager
def serve_process(
    backend: str,
    *options: str,
    command: tuple[str, ...] = ("serve", "tests.network.apps:raising_app"),
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m panther_ws serve tests.network.apps:raising_app`` on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "panther_ws", *command),
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


def panther_ws(*arguments: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "panther_ws", *arguments],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
    )


def echo_through_connect(
    url: str, *arguments: str, line: str, replies: int = 1
) -> tuple[int, list[str], bytes]:
    """``panther-ws connect``: send ``line``, read ``replies`` lines, then end stdin.

    Ending stdin at once would race the echo against the client's close: the server may
    answer the close first (RFC 6455 lets it), and the echo is then never sent.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "panther_ws", "connect", url, *arguments],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(line.encode() + b"\n")
        process.stdin.flush()
        echoed = [process.stdout.readline().decode().rstrip("\n") for _ in range(replies)]
        _, stderr = process.communicate(timeout=30)  # ends stdin: the client closes
    finally:
        process.kill()
    return process.returncode, echoed, stderr


@pytest.mark.parametrize("command", ["serve", "demo", "connect"])
def test_help_describes_every_option(command: str) -> None:
    result = panther_ws(command, "--help")
    assert result.returncode == 0
    options = result.stdout.decode().split("options:\n", 1)[1]
    # argparse: an entry starts "  -x, --name VALUE", its help after two spaces or below
    entries = re.split(r"\n(?=  -)", options.strip("\n"))
    described = {}
    for entry in entries:
        flags, *help_text = re.split(r"\s{2,}|\n", entry.strip(), maxsplit=1)
        described[flags] = "".join(help_text).strip()
    assert all(described.values()), described
    names = " ".join(described)
    if command == "serve":
        for option in ("--ssl-certfile", "--ssl-keyfile", "--lifespan", "--max-connections"):
            assert option in names
    if command == "connect":
        assert "--header" in names
        assert "--subprotocol" in names


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_connect_sends_headers_and_subprotocols(anyio_backend: str) -> None:
    with serve_process("asyncio") as (port, _):
        status, printed, stderr = echo_through_connect(
            f"ws://127.0.0.1:{port}/whoami",
            *("-H", "X-Token: abc", "--header", "X-Other: 1"),
            *("--subprotocol", "chat", "--subprotocol", "json"),
            line="hello",
            replies=2,
        )
    assert status == 0, stderr
    assert printed == ["abc", "hello"]
    assert "subprotocol 'chat'" in stderr.decode()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_connect_says_what_refused_it(anyio_backend: str) -> None:
    with serve_process("asyncio") as (port, _):
        refused = panther_ws("connect", f"ws://127.0.0.1:{port}/reject")
        denied = panther_ws("connect", f"ws://127.0.0.1:{port}/deny")
    assert refused.returncode == denied.returncode == 1
    assert refused.stderr.decode().strip() == "error: the server refused the connection: HTTP 403"
    assert denied.stderr.decode().strip() == (
        "error: the server refused the connection: HTTP 401 'no token'"
    )
    nobody = free_port()
    result = panther_ws("connect", f"ws://127.0.0.1:{nobody}/")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"error: cannot connect to ws://127.0.0.1:{nobody}/: connection refused"
    )


async def test_serve_over_tls_and_connect_with_its_certificate(
    anyio_backend: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    tls = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    with serve_process(anyio_backend, *tls) as (port, _):
        url = f"wss://127.0.0.1:{port}/echo"
        trusted = echo_through_connect(url, "--ssl-ca-certs", str(cert), line="secret")
        insecure = echo_through_connect(url, "--insecure", line="anyway")
        untrusted = panther_ws("connect", url, stdin=b"no\n")
    assert trusted == (0, ["secret"], b""), trusted
    assert insecure == (0, ["anyway"], b""), insecure
    assert untrusted.returncode == 1
    assert "certificate verify failed" in untrusted.stderr.decode()


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_lifespan_modes(mode: str) -> None:
    port = free_port()
    command = [sys.executable, "-m", "panther_ws", "serve", "tests.network.apps:websocket_only_app"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--lifespan", mode], cwd=ROOT, stderr=subprocess.PIPE
    )
    try:
        if mode != "on":
            wait_for_port(port, process)
            process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    log = errors.decode()
    assert "ExceptionGroup" not in log
    if mode == "on":  # the app's traceback is logged (as uvicorn does), then one line
        assert process.returncode == 3
        assert log.splitlines()[-1].startswith("error: application startup failed: ")
        assert "cannot serve 'lifespan'" in log
    else:
        assert process.returncode == 0
        assert "Traceback" not in log
        unsupported = [line for line in log.splitlines() if "lifespan" in line]
        assert len(unsupported) == (1 if mode == "auto" else 0), log


async def test_demo_serves_its_page_and_its_echo(anyio_backend: str) -> None:
    with serve_process(anyio_backend, command=("demo",)) as (port, _):
        async with httpx.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200
        assert "<html" in page.text.lower()
        async with connect(f"ws://127.0.0.1:{port}/ws/echo/") as ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"
