"""A lifespan scope that raises, under each ``--lifespan`` mode, on real server processes.

``websocket_only.raising_lifespan_app`` raises on the lifespan scope as a bare Channels ``URLRouter``
does. uvicorn reads that as "unsupported" in "auto" and serves; so must ``panther-ws
serve`` (before, it crashed with an ExceptionGroup). hypercorn, which has no such switch,
does the same as "auto".
"""

from __future__ import annotations

import subprocess

import pytest
from websockets.sync.client import connect

from tests.hosting.embedders import ROOT, server_command, stop
from tests.processes import free_port, wait_for_port

APP = "tests.hosting.websocket_only:raising_lifespan_app"
UNSUPPORTED = "ASGI 'lifespan' protocol appears unsupported"


def serve(server: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = server_command(server, APP, port, *extra)
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
    return process, port


def echoes(port: int) -> bool:
    with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=5, close_timeout=5) as ws:
        ws.send("still serving")
        return ws.recv(timeout=5) == "still serving"


def log_of(process: subprocess.Popen[bytes]) -> str:
    stop(process)
    assert process.stderr is not None
    return process.stderr.read().decode()


@pytest.mark.parametrize("server", ["serve", "uvicorn-wsproto"])
def test_auto_logs_unsupported_once_and_serves(server: str) -> None:
    process, port = serve(server, "--lifespan", "auto")
    try:
        wait_for_port(port, process)
        assert echoes(port)
    finally:
        log = log_of(process)
    assert log.count(UNSUPPORTED) == 1, log
    assert "ExceptionGroup" not in log
    assert "Traceback" not in log


def test_hypercorn_serves_it_too() -> None:
    process, port = serve("hypercorn")
    try:
        wait_for_port(port, process)
        assert echoes(port)
    finally:
        log_of(process)


@pytest.mark.parametrize("server", ["serve", "uvicorn-wsproto"])
def test_on_refuses_to_start_with_exit_status_3(server: str) -> None:
    process, _ = serve(server, "--lifespan", "on")
    try:
        _, errors = process.communicate(timeout=30)
    finally:
        stop(process)
    log = errors.decode()
    assert process.returncode == 3, log
    assert "No route found for path" in log  # the app's own exception is shown
    assert "ExceptionGroup" not in log


@pytest.mark.parametrize("server", ["serve", "uvicorn-wsproto"])
def test_off_never_opens_the_lifespan_scope(server: str) -> None:
    process, port = serve(server, "--lifespan", "off")
    try:
        wait_for_port(port, process)
        assert echoes(port)
    finally:
        log = log_of(process)
    assert "lifespan" not in log.lower()
