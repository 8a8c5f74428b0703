"""Server processes for the live benchmarks: started on a free port, waited for, stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(arguments: list[str]) -> Iterator[tuple[int, int]]:
    """``(port, pid)`` of ``python ARGUMENTS PORT``, once it accepts connections."""
    port = free_port()
    process = subprocess.Popen([sys.executable, *arguments, str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{arguments} did not start") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        # kill, not terminate: a server busy with an attack must not delay the next row.
        process.kill()
        process.wait(timeout=20)
