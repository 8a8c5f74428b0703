"""Hostile peers against live servers: ``panther-ws serve`` beside the websockets server.

    python benchmarks/attacks.py

Each server runs the same echo endpoint in its own process (a fresh one per attack, so its
memory high-water mark is that attack's), with its default limits (1 MiB messages); the
attackers and the benign client run here. Three attacks:

(a) pre-accept flood: the handler of ``/slow`` waits 5 s before accepting (a slow auth
    lookup) while the client streams frames right after its upgrade request. Reported: the
    bytes the client got into the connection in those 5 s (the server's reads plus the
    kernel's buffers, ~4 MiB on loopback) and the server's RSS growth.
(b) idle sockets: 1,000 sockets that never send a byte, then a real client: whether it
    connects, and how long its handshake took.
(c) compression bombs: 40 connections each send one permessage-deflate frame that inflates
    to 256 MiB of zeros (~250 KiB on the wire), while a benign client does round trips.
    Reported: the benign round trip's median, and the server's RSS high-water mark.

Ratios are panther-ws's figure over the websockets server's, in the same run. The whole run
takes about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, os.path.dirname(__file__))

from _processes import server_process

ROOT = Path(__file__).resolve().parents[1]
SLOW_ACCEPT_SECONDS = 5.0
IDLE_SOCKETS = 1000
BOMBS = 40
BOMB_SIZE = 256 * 1024 * 1024
MIB = 1024 * 1024

SERVERS = {
    "panther-ws serve": [
        *("-m", "panther_ws", "serve", "benchmarks.attacks:app", "--log-level", "error"),
        "--port",
    ],
    "websockets server": ["-m", "benchmarks.attacks", "--websockets-server"],
}


# -- the servers' endpoint: echo, and /slow accepts after 5 s -----------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI echo app for ``panther-ws serve``."""
    if scope["type"] != "websocket":
        return
    await receive()
    if scope["path"] == "/slow":
        await anyio.sleep(SLOW_ACCEPT_SECONDS)
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", **{k: message.get(k) for k in ("text", "bytes")}})


async def _websockets_server(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request

    async def slow_accept(connection: ServerConnection, request: Request) -> None:
        if request.path == "/slow":
            await asyncio.sleep(SLOW_ACCEPT_SECONDS)

    async def echo(connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                await connection.send(message)

    async with serve(echo, "127.0.0.1", port, process_request=slow_accept) as server:
        await server.serve_forever()


# -- processes and their memory ---------------------------------------------------------------


@contextmanager
def server(name: str) -> Iterator[tuple[int, int]]:
    """``(port, pid)`` of a fresh server process."""
    with server_process(SERVERS[name]) as running:
        yield running


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the high-water mark) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


# -- the client side ---------------------------------------------------------------------------


def upgrade_request(path: str, *, deflate: bool = False) -> bytes:
    extensions = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n".encode()
        + b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        + b"Sec-WebSocket-Version: 13\r\n"
        + extensions
        + b"\r\n"
    )


def client_frame(payload: bytes, *, compressed: bool = False) -> bytes:
    """One masked binary frame (mask key 0, so the payload goes as is)."""
    first = 0x82 | (0x40 if compressed else 0)
    return struct.pack("!BBQ4s", first, 0x80 | 127, len(payload), bytes(4)) + payload


def deflate_bomb(size: int) -> bytes:
    """A permessage-deflate payload that inflates to ``size`` zero bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MIB)
    parts = [compressor.compress(chunk) for _ in range(size // MIB)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]  # without the 00 00 ff ff tail (RFC 7692 7.2.1)


def pre_accept_flood(port: int, pid: int) -> tuple[float, float]:
    """MiB the client got in before the accept, and the server's RSS growth in MiB."""
    before = memory_mib(pid)["VmRSS"]
    frame = client_frame(bytes(MIB))
    sent, pending = 0, memoryview(frame)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(upgrade_request("/slow"))
        sock.settimeout(0.2)
        deadline = time.monotonic() + SLOW_ACCEPT_SECONDS - 0.5
        while time.monotonic() < deadline:
            try:
                count = sock.send(pending)
            except TimeoutError:
                continue  # the server stopped reading
            sent, pending = sent + count, pending[count:] or memoryview(frame)
        grown = memory_mib(pid)["VmHWM"] - before
    return sent / MIB, grown


def idle_sockets(port: int) -> str:
    """Whether a real client gets in past 1,000 idle sockets, and how fast."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE_SOCKETS)]
    try:
        time.sleep(0.5)  # every idle socket accepted
        start = time.perf_counter()
        try:
            with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
                ws.send("hello")
                ws.recv(timeout=5)
        except InvalidStatus as refused:
            return f"refused: HTTP {refused.response.status_code}"
        except (TimeoutError, OSError) as failed:
            return f"failed: {failed!r}"
        return f"connected in {(time.perf_counter() - start) * 1000:.1f} ms"
    finally:
        for sock in idle:
            sock.close()


async def _bomb(port: int, frame: bytes) -> int | None:
    """Send one bomb once the server accepted; the close code it answered (None: none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request("/", deflate=True))
        # After the 101: the websockets server refuses frames that come before its answer.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        received = bytearray()
        with contextlib.suppress(ConnectionError, TimeoutError):
            writer.write(frame)
            await writer.drain()
            while chunk := await asyncio.wait_for(reader.read(65536), 60):
                received += chunk  # until the server hangs up
    finally:
        writer.close()
    if not head.startswith(b"HTTP/1.1 101") or len(received) < 4 or received[0] != 0x88:
        return None
    return int(struct.unpack("!H", received[2:4])[0])


async def _bombs_and_a_benign_client(port: int) -> tuple[list[float], list[int | None]]:
    from websockets.asyncio.client import connect

    frame = client_frame(deflate_bomb(BOMB_SIZE), compressed=True)
    round_trips: list[float] = []
    async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        bombs = asyncio.gather(*(_bomb(port, frame) for _ in range(BOMBS)))
        while not bombs.done() or not round_trips:
            start = time.perf_counter()
            await ws.send("ping?")
            await ws.recv()
            round_trips.append(time.perf_counter() - start)
            await asyncio.sleep(0.01)
        codes = await bombs
    return round_trips, codes


def compression_bombs(port: int, pid: int) -> tuple[float, float, str]:
    """The benign client's median round trip in ms, the server's RSS high-water mark, and
    the close codes the bombs got."""
    round_trips, codes = asyncio.run(_bombs_and_a_benign_client(port))
    answers = ", ".join(f"{codes.count(code)} x {code}" for code in sorted(set(codes), key=str))
    return statistics.median(round_trips) * 1000, memory_mib(pid)["VmHWM"], answers


# -- the report -------------------------------------------------------------------------------


def main() -> None:
    results: dict[str, dict[str, Any]] = {}
    for name in SERVERS:
        row: dict[str, Any] = {}
        with server(name) as (port, pid):
            row["flood MiB"], row["flood RSS +MiB"] = pre_accept_flood(port, pid)
        with server(name) as (port, _):
            row["idle sockets"] = idle_sockets(port)
        with server(name) as (port, pid):
            row["bomb rt ms"], row["bomb HWM MiB"], row["bomb close codes"] = compression_bombs(
                port, pid
            )
        results[name] = row

    ours, theirs = results["panther-ws serve"], results["websockets server"]
    print(f"{'':<48}{'panther-ws serve':>22}{'websockets server':>22}{'ratio':>9}")
    for key, label in (
        ("flood MiB", f"(a) MiB taken in the {SLOW_ACCEPT_SECONDS:g} s before accept"),
        ("flood RSS +MiB", "(a) server RSS growth, MiB"),
        ("bomb rt ms", f"(c) benign round trip, median ms, {BOMBS} bombs"),
        ("bomb HWM MiB", "(c) server RSS high-water mark, MiB"),
    ):
        ratio = ours[key] / theirs[key] if theirs[key] else float("nan")
        print(f"{label:<48}{ours[key]:>22.1f}{theirs[key]:>22.1f}{ratio:>8.1f}x")
    for key, label in (
        ("idle sockets", f"(b) real client after {IDLE_SOCKETS} idle sockets"),
        ("bomb close codes", "(c) what the bombs got (close code)"),
    ):
        print(f"{label:<48}{ours[key]:>22}{theirs[key]:>22}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--websockets-server"]:
        asyncio.run(_websockets_server(int(sys.argv[2])))
    else:
        main()
