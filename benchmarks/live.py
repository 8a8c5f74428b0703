"""Loopback echo against real servers, all driven by the same client, in one run.

    python benchmarks/live.py [--idle N] [--memory] [SERVER NAME ...]

Servers (each in its own process): ours (``panther-ws serve``, on asyncio and on trio),
uvicorn ``--ws wsproto`` and ``--ws websockets-sansio`` with the same ASGI echo app, the
websockets library's own server, and picows. Client: the websockets library's asyncio client
in this process (fast C framing, so the server is what is measured). Workloads: 5,000
sequential 32 B round trips; 200 x 64 KiB; 50 concurrent connections x 200 x 32 B.
Reported: round trips/s and the server process's CPU time per round trip (utime+stime from
/proc), medians of 3 samples of at least 1 s each (the workload repeated), and the CPU ratio
to the websockets server. Then memory: a fresh server process, ``N`` (2,000 unless
``--idle`` says otherwise) connections opened and left idle past their handshake, the growth
of its resident set (VmRSS) divided by ``N``, and the ratio to the websockets server's
(``--memory``: only that, without the round trips).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, os.path.dirname(__file__))

from _processes import server_process

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 1.0


def _panther_serve(*options: str) -> list[str]:
    """``panther-ws serve`` on the echo app, limits raised for the benchmark; port last."""
    return [
        *("-m", "panther_ws", "serve", "benchmarks.servers.echo_asgi:app", *options),
        *("--log-level", "warning", "--max-message-size", str(64 * 1024 * 1024)),
        *("--max-connections", "100000", "--port"),
    ]


SERVERS = {
    "panther-ws serve": _panther_serve(),
    "panther-ws serve (trio)": _panther_serve("--backend", "trio"),
    "uvicorn wsproto": [
        "-m",
        "uvicorn",
        "--ws",
        "wsproto",
        "--log-level",
        "warning",
        "benchmarks.servers.echo_asgi:app",
        "--port",
    ],
    "uvicorn websockets-sansio": [
        "-m",
        "uvicorn",
        "--ws",
        "websockets-sansio",
        "--log-level",
        "warning",
        "benchmarks.servers.echo_asgi:app",
        "--port",
    ],
    "websockets server": ["-m", "benchmarks.servers.echo_websockets"],
    "picows": ["-m", "benchmarks.servers.echo_picows"],
}
# Peers outside the dev extra: their rows are skipped, saying so, when they are missing.
REQUIRES = {"picows": "picows"}


IDLE_BATCH = 100  # connections opened at once: within every server's accept backlog


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def sequential(port: int, payload: str | bytes, count: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None) as ws:
        for _ in range(count):
            await ws.send(payload)
            await ws.recv()


async def concurrent(port: int, connections: int, count: int) -> None:
    await asyncio.gather(*(sequential(port, "x" * 32, count) for _ in range(connections)))


WORKLOADS = {
    "5000 x 32 B": (lambda port: sequential(port, "x" * 32, 5000), 5000),
    "200 x 64 KiB": (lambda port: sequential(port, b"y" * 65536, 200), 200),
    "50 conns x 200": (lambda port: concurrent(port, 50, 200), 10_000),
}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def idle_growth(port: int, pid: int, count: int) -> float:
    """KiB of server RSS per connection open and idle past its handshake."""
    url = f"ws://127.0.0.1:{port}/"
    async with connect(url, compression=None) as ws:  # warm up: imports, first buffers
        await ws.send("x")
        await ws.recv()
    await asyncio.sleep(0.2)
    before = rss_kib(pid)
    opened = []
    try:
        while len(opened) < count:
            batch = min(IDLE_BATCH, count - len(opened))
            opened += await asyncio.gather(
                *(connect(url, compression=None, open_timeout=60) for _ in range(batch))
            )
        await asyncio.sleep(0.5)
        return (rss_kib(pid) - before) / count
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))


def measure_idle(arguments: list[str], count: int) -> float:
    with server_process(arguments) as (port, pid):
        return asyncio.run(idle_growth(port, pid, count))


def measure(arguments: list[str]) -> list[tuple[float, float]]:
    """Median round trips/s and server CPU µs per round trip, for each workload."""
    cells = []
    with server_process(arguments) as (port, pid):
        for run, round_trips in WORKLOADS.values():
            rates, cpus = [], []
            for _ in range(3):
                # The kernel counts CPU time in 10 ms ticks: repeat the workload for a second
                # or more so the count is precise to about 1%.
                cpu_before, start, done = cpu_seconds(pid), time.perf_counter(), 0
                while done == 0 or time.perf_counter() - start < SAMPLE_SECONDS:
                    asyncio.run(run(port))
                    done += round_trips
                elapsed, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu_before
                rates.append(done / elapsed)
                cpus.append(cpu / done * 1e6)
            cells.append((statistics.median(rates), statistics.median(cpus)))
    return cells


def main() -> None:
    # e.g. python benchmarks/live.py --idle 10000 --memory "panther-ws serve" "websockets server"
    only, idle = sys.argv[1:], 2000
    if only[:1] == ["--idle"]:
        idle, only = int(only[1]), only[2:]
    memory_only = only[:1] == ["--memory"]
    if memory_only:
        only = only[1:]
    if not memory_only:
        print(
            f"{'server':<28}"
            + "".join(f"{name + ' rt/s':>20}{'CPU µs/rt':>11}" for name in WORKLOADS)
            + "   CPU x websockets server"
        )
    results: dict[str, list[tuple[float, float]]] = {}
    memory: dict[str, float] = {}
    for name, arguments in SERVERS.items():
        if only and name not in only:
            continue
        needed = REQUIRES.get(name)
        if needed is not None and importlib.util.find_spec(needed) is None:
            print(f"{name:<28}skipped: {needed} is not installed (pip install {needed})")
            continue
        if not memory_only:
            results[name] = measure(arguments)
        memory[name] = measure_idle(arguments, idle)
    reference = results.get("websockets server")
    for name, cells in results.items():
        ratios = ""
        if reference is not None:
            ratios = "   " + " ".join(
                f"{cpu / ref:.2f}x" for (_, cpu), (_, ref) in zip(cells, reference, strict=True)
            )
        print(
            f"{name:<28}" + "".join(f"{rate:>20,.0f}{cpu:>11.0f}" for rate, cpu in cells) + ratios
        )

    print(f"\n{'server':<28}{f'KiB per idle connection ({idle:,})':>36}   x websockets server")
    reference_memory = memory.get("websockets server")
    for name, kib in memory.items():
        ratio = f"   {kib / reference_memory:.2f}x" if reference_memory else ""
        print(f"{name:<28}{kib:>36.1f}{ratio}")


if __name__ == "__main__":
    main()
