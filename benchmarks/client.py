"""Client CPU time against one fast echo server: ours, websockets, aiohttp, httpx-ws, picows.

    python benchmarks/client.py [CLIENT NAME ...]

One echo server (picows' if it is installed, else the websockets library's), in its own
process. Each client runs in its own process too, so what is measured is that client's CPU
time alone (``time.process_time()`` around the workload, the imports and a warm-up left
out). Workloads: sequential round trips of 32 B text and of 64 KiB binary on one connection,
and connect cycles (open, one 32 B round trip, close and wait for the server's close).
Compression is off everywhere (the picows server does not offer it anyway). Reported: the
median of ``ROUNDS`` samples of at least ``SAMPLE_SECONDS`` each, the clients taking turns, in CPU µs
per round trip or per cycle, and the ratios to aiohttp's and the websockets client's in the
same run, also round by round (the steadier figure on a shared machine). The floor is no
client at all (canned frames on a bare asyncio protocol): what the loop, the kernel and the
server cost; ours above it is what our client and its core spend. picows' client runs only
where picows installs (the ``dev`` extra has it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _processes import ROOT, server_process

SAMPLE_SECONDS = 0.4
ROUNDS = 5
SMALL, LARGE = "x" * 32, b"y" * 65536
WORKLOADS = ("32 B", "64 KiB", "connect cycle")
# How many operations one batch does; batches repeat until SAMPLE_SECONDS have passed.
BATCH = {"32 B": 500, "64 KiB": 50, "connect cycle": 20}

# A client: given the URL, an async function running ``count`` operations of a workload.
Runner = Callable[[str, str, int], Awaitable[None]]


async def run_ours(url: str, workload: str, count: int) -> None:
    from panther_ws.client import connect

    options: dict[str, Any] = {"max_message_size": 1 << 26, "permessage_deflate": False}
    if workload == "connect cycle":
        for _ in range(count):
            async with connect(url, **options) as ws:
                await ws.send(SMALL)
                await ws.receive()
        return
    payload = SMALL if workload == "32 B" else LARGE
    async with connect(url, **options) as ws:
        for _ in range(count):
            await ws.send(payload)
            await ws.receive()


async def run_websockets(url: str, workload: str, count: int) -> None:
    from websockets.asyncio.client import connect

    if workload == "connect cycle":
        for _ in range(count):
            async with connect(url, max_size=None, compression=None) as ws:
                await ws.send(SMALL)
                await ws.recv()
        return
    payload = SMALL if workload == "32 B" else LARGE
    async with connect(url, max_size=None, compression=None) as ws:
        for _ in range(count):
            await ws.send(payload)
            await ws.recv()


async def run_aiohttp(url: str, workload: str, count: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        if workload == "connect cycle":
            for _ in range(count):
                async with session.ws_connect(url, max_msg_size=0, compress=0) as ws:
                    await ws.send_str(SMALL)
                    await ws.receive()
            return
        async with session.ws_connect(url, max_msg_size=0, compress=0) as ws:
            for _ in range(count):
                if workload == "32 B":
                    await ws.send_str(SMALL)
                else:
                    await ws.send_bytes(LARGE)
                await ws.receive()


async def run_httpx_ws(url: str, workload: str, count: int) -> None:
    import httpx
    from httpx_ws import aconnect_ws

    http_url = url.replace("ws://", "http://", 1)
    async with httpx.AsyncClient() as client:
        if workload == "connect cycle":
            for _ in range(count):
                async with aconnect_ws(http_url, client, max_message_size_bytes=1 << 26) as ws:
                    await ws.send_text(SMALL)
                    await ws.receive()
            return
        async with aconnect_ws(http_url, client, max_message_size_bytes=1 << 26) as ws:
            for _ in range(count):
                if workload == "32 B":
                    await ws.send_text(SMALL)
                else:
                    await ws.send_bytes(LARGE)
                await ws.receive()


async def run_picows(url: str, workload: str, count: int) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    loop = asyncio.get_running_loop()

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.waiter: asyncio.Future[bytes] | None = None

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY) and self.waiter:
                self.waiter.set_result(frame.get_payload_as_bytes())

        async def round_trip(self, transport: WSTransport, kind: Any, data: bytes) -> None:
            self.waiter = loop.create_future()
            transport.send(kind, data)
            await self.waiter

    small = SMALL.encode()
    if workload == "connect cycle":
        for _ in range(count):
            transport, listener = await ws_connect(Listener, url, max_frame_size=1 << 26)
            await listener.round_trip(transport, WSMsgType.TEXT, small)
            transport.send_close()
            await transport.wait_disconnected()
        return
    kind, payload = (WSMsgType.TEXT, small) if workload == "32 B" else (WSMsgType.BINARY, LARGE)
    transport, listener = await ws_connect(Listener, url, max_frame_size=1 << 26)
    for _ in range(count):
        await listener.round_trip(transport, kind, payload)
    transport.send_close()
    await transport.wait_disconnected()


def _masked(opcode: int, payload: bytes) -> bytes:
    """One client frame, masked with a zero key (the server unmasks it all the same)."""
    if len(payload) < 126:
        header = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + len(payload).to_bytes(8, "big")
    return header + bytes(4) + payload


async def run_floor(url: str, workload: str, count: int) -> None:
    """No client at all: canned bytes on a bare asyncio protocol, counting the answer's bytes
    without parsing them. What the loop, the kernel and the server cost any client."""
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    small, close = _masked(0x1, SMALL.encode()), _masked(0x8, (1000).to_bytes(2, "big"))
    large = _masked(0x2, LARGE)

    buffer = bytearray(256 * 1024)  # one reused read buffer, as our stream has

    class Protocol(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.waiter: asyncio.Future[None] = loop.create_future()
            self.missing = 0

        def get_buffer(self, sizehint: int) -> bytearray:
            return buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.missing -= nbytes
            if self.missing <= 0 and not self.waiter.done():
                self.waiter.set_result(None)

        async def exchange(self, transport: asyncio.Transport, data: bytes, answer: int) -> None:
            self.waiter, self.missing = loop.create_future(), answer
            transport.write(data)
            await self.waiter

    async def open_one() -> tuple[asyncio.Transport, Protocol]:
        transport, protocol = await loop.create_connection(Protocol, host, int(port))
        await protocol.exchange(transport, request, 1)  # the 101 comes in one read
        return transport, protocol

    if workload == "connect cycle":
        for _ in range(count):
            transport, protocol = await open_one()
            await protocol.exchange(transport, small, len(small) - 4)
            await protocol.exchange(transport, close, 4)
            transport.close()
        return
    transport, protocol = await open_one()
    frame = small if workload == "32 B" else large
    for _ in range(count):
        await protocol.exchange(transport, frame, len(frame) - 4)
    transport.close()


CLIENTS: dict[str, tuple[Runner, str]] = {  # name: (runner, backend)
    "panther-ws connect": (run_ours, "asyncio"),
    "panther-ws connect (trio)": (run_ours, "trio"),
    "aiohttp": (run_aiohttp, "asyncio"),
    "websockets": (run_websockets, "asyncio"),
    "httpx-ws": (run_httpx_ws, "asyncio"),
    "picows": (run_picows, "asyncio"),
    "floor (bare asyncio)": (run_floor, "asyncio"),
}
REQUIRES = {"picows": "picows"}


def worker(name: str, url: str) -> None:
    """In the client's own process: print CPU µs per operation for every workload."""
    runner, backend = CLIENTS[name]

    async def measure_all() -> list[float]:
        cells = []
        for workload in WORKLOADS:
            await runner(url, workload, max(1, BATCH[workload] // 10))  # warm up
            cpu_before, start, done = time.process_time(), time.perf_counter(), 0
            while done == 0 or time.perf_counter() - start < SAMPLE_SECONDS:
                await runner(url, workload, BATCH[workload])
                done += BATCH[workload]
            cells.append((time.process_time() - cpu_before) / done * 1e6)
        return cells

    if backend == "trio":
        import anyio

        cells = anyio.run(measure_all, backend="trio")
    else:
        cells = asyncio.run(measure_all())
    print(" ".join(f"{cell:.3f}" for cell in cells))


def core_handshake_cpu(count: int = 500) -> float:
    """CPU µs of our client core's half of a handshake alone (request out, 101 in), no I/O.

    What a connect cycle spends in ``panther_ws.protocol`` (wsproto's handshake on h11)
    before any socket is involved: the floor of our connect cycles that is not the client's.
    """
    from panther_ws.protocol import ClientConnection, ServerConnection

    spent = 0.0
    for _ in range(count):
        start = time.process_time()
        client = ClientConnection("127.0.0.1:8000", "/", permessage_deflate=False)
        request = client.data_to_send()
        spent += time.process_time() - start
        server = ServerConnection(permessage_deflate=False)
        server.receive_data(request)
        list(server.events())
        server.accept()
        answer = server.data_to_send()
        start = time.process_time()
        client.receive_data(answer)
        list(client.events())
        spent += time.process_time() - start
    return spent / count * 1e6


def main() -> None:
    only = sys.argv[1:]
    names = [name for name in CLIENTS if not only or name in only]
    for name in list(names):
        needed = REQUIRES.get(name)
        if needed is not None and importlib.util.find_spec(needed) is None:
            print(f"{name:<28}skipped: {needed} is not installed (pip install {needed})")
            names.remove(name)
    if importlib.util.find_spec("picows") is not None:
        server_name, server = "picows", ["-m", "benchmarks.servers.echo_picows"]
    else:
        server_name, server = "websockets", ["-m", "benchmarks.servers.echo_websockets"]
    print(f"echo server: {server_name}; client CPU µs per operation, median of {ROUNDS}")
    samples: dict[str, list[list[float]]] = {name: [] for name in names}
    with server_process(server) as (port, _):
        url = f"ws://127.0.0.1:{port}/"
        for _ in range(ROUNDS):
            for name in names:  # taking turns: a slow spell of the machine hits every client
                output = subprocess.run(
                    [sys.executable, __file__, "--worker", name, url],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                samples[name].append([float(cell) for cell in output.split()])
    medians = {
        name: [statistics.median(column) for column in zip(*rows, strict=True)]
        for name, rows in samples.items()
    }
    print(
        f"{'client':<28}"
        + "".join(f"{workload:>15}" for workload in WORKLOADS)
        + "   x aiohttp            x websockets"
    )
    for name, cells in medians.items():
        ratios = ""
        for peer in ("aiohttp", "websockets"):
            reference = medians.get(peer)
            if reference is not None:
                ratios += "   " + " ".join(
                    f"{cell / ref:5.2f}x" for cell, ref in zip(cells, reference, strict=True)
                )
        print(f"{name:<28}" + "".join(f"{cell:>15.1f}" for cell in cells) + ratios)
    if "aiohttp" in samples:
        print_round_ratios(samples, "aiohttp")
    floor = medians.get("floor (bare asyncio)")
    ours = medians.get("panther-ws connect")
    if floor is not None and ours is not None:
        print(
            "panther-ws connect above the floor: "
            + " / ".join(f"{cell - base:.1f}" for cell, base in zip(ours, floor, strict=True))
            + " µs"
        )
    print(
        f"of a panther-ws connect cycle, its core's handshake alone (no I/O): "
        f"{core_handshake_cpu():.1f} µs"
    )


def print_round_ratios(samples: dict[str, list[list[float]]], peer: str) -> None:
    """Each round's ratio to ``peer``, whose sample ran seconds before or after: a slow spell
    of a shared machine lifts both, so these scatter less than the medians' ratio does."""
    print(f"x {peer} round by round: median [min - max] of {ROUNDS}")
    for name, rows in samples.items():
        if name == peer:
            continue
        cells = []
        for column in range(len(WORKLOADS)):
            ratios = [
                row[column] / ref[column] for row, ref in zip(rows, samples[peer], strict=True)
            ]
            cells.append(
                f"{statistics.median(ratios):.2f}x [{min(ratios):.2f} - {max(ratios):.2f}]"
            )
        print(f"{name:<28}" + "".join(f"{cell:>23}" for cell in cells))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
