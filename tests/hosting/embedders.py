"""Every way to host an ASGI app, behind one small interface, and the servers as processes.

An :class:`Embedder` opens one websocket, plays a short script (send these messages, then
close with this code or wait for the app to close) and reports the :class:`Outcome` a
client sees: the HTTP status of the handshake, what arrived, how it closed, and, in
memory, the app's exception as the test sees it. The in-memory embedders (the test client
direct and over the wire, the httpx transport) run the app in this process; the others
reach a real server over a socket with the network client, so the same test function
compares all of them.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import httpx_ws
import pytest

from panther_ws.client import connect
from panther_ws.hosting.types import ASGIApp
from panther_ws_testing import WebsocketClosed, WebsocketRejected, WebsocketTestClient
from panther_ws_testing.transport import ASGIWebsocketTransport
from tests.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 3.0  # every wait of a script: a hang fails the test within it


@dataclass
class Outcome:
    """What a client saw of one connection (and, in memory, what the test was raised)."""

    status_code: int  # 101 when accepted, else the HTTP status of the refusal
    subprotocol: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # of the 101 or the refusal
    body: bytes = b""  # of a refusal
    messages: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    rejection_code: int | None = None  # the test client's WebsocketRejected.code
    rejection_reason: Any = None  # ... and .reason: the app's own, for the test client
    error: BaseException | None = None  # the app's exception, as the test sees it

    @property
    def accepted(self) -> bool:
        return self.status_code == 101


@dataclass(frozen=True)
class Script:
    """What the client does once accepted: ``send``, then read ``receive`` messages and close
    with ``close`` (1000 by default); with neither, it reads until the app closes."""

    query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    subprotocols: Sequence[str] = ()
    send: Sequence[str | bytes] = ()
    receive: int | None = None
    close: tuple[int, str] | None = None

    @property
    def closes(self) -> tuple[int, str] | None:
        """The client's close, if the script ends with one."""
        if self.close is None and self.receive is not None:
            return (1000, "")
        return self.close

    @property
    def reads(self) -> int | float:
        return math.inf if self.closes is None else (self.receive or 0)


class Embedder(Protocol):
    name: str
    in_memory: bool

    async def run(self, path: str, script: Script = ...) -> Outcome: ...


def _headers(pairs: Sequence[tuple[bytes, bytes]] | Any) -> dict[str, str]:
    items = pairs.multi_items() if isinstance(pairs, httpx.Headers) else pairs
    result: dict[str, str] = {}
    for name, value in items:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        value = value.decode("latin-1") if isinstance(value, bytes) else value
        result[name.lower()] = value
    return result


def _target(path: str, script: Script) -> str:
    return path + (f"?{script.query}" if script.query else "")


class HarnessEmbedder:
    """``WebsocketTestClient(app)``, direct or ``wire=True``."""

    in_memory = True

    def __init__(self, app: ASGIApp, *, wire: bool) -> None:
        self.app = app
        self.wire = wire
        self.name = "wire" if wire else "direct"

    async def run(self, path: str, script: Script = Script()) -> Outcome:
        outcome = Outcome(status_code=0)
        try:
            async with WebsocketTestClient(self.app, wire=self.wire, timeout=TIMEOUT) as client:
                await self._converse(client, path, script, outcome)
        except BaseException as exc:
            if outcome.error is None:
                outcome.error = exc
        return outcome

    async def _converse(
        self, client: WebsocketTestClient, path: str, script: Script, outcome: Outcome
    ) -> None:
        try:
            ws = await client.connect(
                _target(path, script),
                headers=list(script.headers),
                subprotocols=list(script.subprotocols),
            )
        except WebsocketRejected as rejected:
            outcome.status_code = rejected.status_code
            outcome.headers = _headers(rejected.headers)
            outcome.body = rejected.body
            outcome.rejection_code, outcome.rejection_reason = rejected.code, rejected.reason
            return
        outcome.status_code = 101
        outcome.subprotocol = ws.subprotocol
        outcome.headers = _headers(ws.response_headers)
        try:
            for message in script.send:
                await ws.send(message)
            while len(outcome.messages) < script.reads:
                outcome.messages.append(await ws.receive())
            if script.closes is not None:
                await ws.close(*script.closes)
        except WebsocketClosed as closed:
            outcome.close_code, outcome.close_reason = closed.code, closed.reason
        except BaseException as exc:
            outcome.error = exc
            if ws.close_code is not None:
                outcome.close_code, outcome.close_reason = ws.close_code, ws.close_reason
        finally:
            if outcome.close_code is None and ws.close_code is not None:
                outcome.close_code, outcome.close_reason = ws.close_code, ws.close_reason
            with anyio.move_on_after(TIMEOUT):
                await ws.close()


class HttpxEmbedder:
    """``httpx_ws.aconnect_ws`` over :class:`ASGIWebsocketTransport`."""

    name = "httpx"
    in_memory = True

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def run(self, path: str, script: Script = Script()) -> Outcome:
        outcome = Outcome(status_code=0)
        transport = ASGIWebsocketTransport(self.app, timeout=TIMEOUT)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                with anyio.fail_after(TIMEOUT * 2):
                    await self._converse(http, path, script, outcome)
        except BaseException as exc:
            if outcome.error is None:
                outcome.error = exc
        return outcome

    async def _converse(
        self, http: httpx.AsyncClient, path: str, script: Script, outcome: Outcome
    ) -> None:
        try:
            async with httpx_ws.aconnect_ws(
                f"http://testserver{_target(path, script)}",
                http,
                headers=dict(script.headers),
                subprotocols=list(script.subprotocols) or None,
                keepalive_ping_interval_seconds=None,
                session_class=httpx_ws.AsyncWebSocketSession,
            ) as ws:
                outcome.status_code = 101
                outcome.subprotocol = ws.subprotocol
                outcome.headers = _headers(ws.response.headers if ws.response else [])
                # httpx-ws wraps what escapes its block in an ExceptionGroup: catch inside.
                try:
                    await self._play(ws, script, outcome)
                except httpx_ws.WebSocketDisconnect as closed:
                    outcome.close_code, outcome.close_reason = closed.code, closed.reason or ""
                except httpx_ws.WebSocketNetworkError:
                    outcome.close_code = 1006  # no close frame: what a client calls 1006
        except httpx_ws.WebSocketUpgradeError as refused:
            response = refused.response
            outcome.status_code = response.status_code
            outcome.headers = _headers(response.headers)
            outcome.body = await response.aread()

    async def _play(
        self, ws: httpx_ws.AsyncWebSocketSession, script: Script, outcome: Outcome
    ) -> None:
        for message in script.send:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)
        while len(outcome.messages) < script.reads:
            event = await ws.receive(timeout=TIMEOUT)
            data = getattr(event, "data", None)
            if isinstance(data, str | bytes | bytearray):
                outcome.messages.append(data if isinstance(data, str) else bytes(data))
        if script.closes is not None:
            await ws.close(*script.closes)
            outcome.close_code, outcome.close_reason = script.closes


class NetworkEmbedder:
    """A real server over a real socket, reached with the network client."""

    in_memory = False

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.base_url = base_url

    async def run(self, path: str, script: Script = Script()) -> Outcome:
        outcome = Outcome(status_code=0)
        try:
            ws = await connect(
                self.base_url + _target(path, script),
                headers=list(script.headers),
                subprotocols=list(script.subprotocols),
                timeout=TIMEOUT,
                open_timeout=TIMEOUT,
                close_timeout=TIMEOUT,
            )
        except WebsocketRejected as rejected:
            outcome.status_code = rejected.status_code
            outcome.headers = _headers(rejected.headers)
            outcome.body = rejected.body
            return outcome
        except WebsocketClosed as closed:  # the server dropped the socket in the handshake
            outcome.close_code = closed.code
            return outcome
        outcome.status_code = 101
        outcome.subprotocol = ws.subprotocol
        outcome.headers = _headers(ws.response_headers)
        try:
            for message in script.send:
                await ws.send(message)
            while len(outcome.messages) < script.reads:
                outcome.messages.append(await ws.receive())
            if script.closes is not None:
                await ws.close(*script.closes)
                outcome.close_code, outcome.close_reason = script.closes
        except WebsocketClosed as closed:
            outcome.close_code, outcome.close_reason = closed.code, closed.reason
        finally:
            with anyio.move_on_after(TIMEOUT):
                await ws.close()
        return outcome


# -- real servers as processes --------------------------------------------------------------

SERVERS: dict[str, list[str]] = {
    "serve": ["-m", "panther_ws", "serve", "{app}", "--port", "{port}"],
    "uvicorn-wsproto": ["-m", "uvicorn", "{app}", "--ws", "wsproto", "--port", "{port}"],
    "uvicorn-websockets": ["-m", "uvicorn", "{app}", "--ws", "websockets", "--port", "{port}"],
    "uvicorn-websockets-sansio": [
        *("-m", "uvicorn", "{app}", "--ws", "websockets-sansio", "--port", "{port}"),
    ],
    "hypercorn": ["-m", "hypercorn", "{app}", "--bind", "127.0.0.1:{port}"],
}
IN_MEMORY = ("direct", "wire", "httpx")
OURS = (*IN_MEMORY, "serve")  # every embedder of ours: one outcome per behaviour
# uvicorn's legacy ``--ws websockets`` is measured in test_differences.py only: it follows
# a 500 with a stray 101 on the same socket, which no client should have to parse.
UVICORN = ("uvicorn-wsproto", "uvicorn-websockets-sansio")
ORACLES = (*UVICORN, "hypercorn")


def server_command(server: str, app: str, port: int, *extra: str) -> list[str]:
    arguments = [part.format(app=app, port=port) for part in SERVERS[server]]
    return [sys.executable, *arguments, *extra]


def start_server(server: str, app: str = "tests.hosting.apps:app", *extra: str) -> Started:
    """``server`` starting to serve ``app`` on a free port; :meth:`Started.wait` for it."""
    port = free_port()
    process = subprocess.Popen(
        server_command(server, app, port, *extra),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Started(process, port)


@dataclass
class Started:
    """A server process and its port; several start at once, so their imports overlap."""

    process: subprocess.Popen[bytes]
    port: int

    def wait(self) -> int:
        """Until it listens; returns the port."""
        wait_for_port(self.port, self.process)
        return self.port


@contextmanager
def server_process(server: str, app: str = "tests.hosting.apps:app", *extra: str) -> Iterator[int]:
    """``server`` serving ``app`` on a free port, until the block ends; yields the port."""
    started = start_server(server, app, *extra)
    try:
        yield started.wait()
    finally:
        stop(started.process)


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminates ``process`` and waits for it (killing it after 10 s)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Servers:
    """Real servers started at once (their imports overlap), each waited for on first use."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._started: dict[str, Started] = {name: start_server(name) for name in names}
        self._ready: set[str] = set()

    def port(self, server: str) -> int:
        started = self._started[server]
        if server not in self._ready:
            started.wait()
            self._ready.add(server)
        return started.port

    def url(self, server: str) -> str:
        return f"ws://127.0.0.1:{self.port(server)}"

    def stop(self) -> None:
        for started in self._started.values():
            started.process.terminate()
        for started in self._started.values():
            stop(started.process)


def on(*hosts: str) -> pytest.MarkDecorator:
    """Runs the test once per embedder in ``hosts`` (the ``host`` fixture's parameter)."""
    return pytest.mark.parametrize("host", hosts, indirect=True)
