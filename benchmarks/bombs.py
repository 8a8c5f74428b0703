"""Compression bombs against our sans-IO core and `websockets`' sans-IO protocol, one run.

    python benchmarks/bombs.py

Every connection negotiates permessage-deflate with a 1 MiB message limit. Each bomb runs in
a fresh child process per implementation, which measures, around feeding the bomb:

- peak extra memory: the RSS high-water mark (reset just before) minus the RSS before;
- kept: the RSS after the failed connections were dropped, minus the RSS before (no GC is
  forced: what is left is what reference counting did not free);
- CPU time, and the close code the implementation sent.

Bombs: one ~1 MB frame inflating to 1 GiB (to a server, and to a client from a hostile
server); one message spread over 4,096 small compressed frames (64 MiB inflated); and 8 and
60 one-frame bombs one after another, each on a new connection. Ratios are ours/websockets
(lower is better). The whole run takes well under a minute.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from typing import Any

LIMIT = 1 << 20
GiB = 1 << 30
RSV1 = 0x40
MASK_BIT = 0x80


# -- bombs (built once, in the parent) --------------------------------------------------------


def _deflated_zeros(size: int, compressor: zlib._Compress) -> bytes:
    """``size`` zero bytes (a multiple of 16 MiB, or less), deflated with a sync flush.

    Once the window holds only zeros, every further 16 MiB deflates to the same bytes: those
    are compressed once and repeated, which builds 1 GiB in well under a second.
    """
    chunk = min(size, 1 << 24)
    first = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if size == chunk:
        return first
    steady = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return first + steady * (size // chunk - 1)


def _frame(opcode: int, payload: bytes, *, fin: bool, rsv1: bool, masked: bool) -> bytes:
    from websockets.utils import apply_mask

    first = (0x80 if fin else 0) | (RSV1 if rsv1 else 0) | opcode
    mask_bit = MASK_BIT if masked else 0
    if len(payload) < 126:
        header = struct.pack("!BB", first, mask_bit | len(payload))
    elif len(payload) < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, len(payload))
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, len(payload))
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + apply_mask(payload, key)


def build_bombs(directory: str) -> dict[str, str]:
    """Write each bomb stream to a file; returns name -> path."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    one_frame = _deflated_zeros(GiB, compressor)[:-4]
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    pieces = [_deflated_zeros(16 * 1024, compressor) for _ in range(4096)]
    streams = {
        "to-server": _frame(0x2, one_frame, fin=True, rsv1=True, masked=True),
        "to-client": _frame(0x2, one_frame, fin=True, rsv1=True, masked=False),
        "fragmented": _frame(0x2, pieces[0], fin=False, rsv1=True, masked=True)
        + b"".join(_frame(0x0, piece, fin=False, rsv1=False, masked=True) for piece in pieces[1:]),
    }
    paths = {}
    for name, stream in streams.items():
        path = os.path.join(directory, name)
        with open(path, "wb") as file:
            file.write(stream)
        paths[name] = path
    return paths


# -- the two implementations (run in the child) -----------------------------------------------


def _ours(side: str) -> tuple[Callable[[bytes], None], Callable[[], int | None]]:
    from panther_ws.protocol import ClientConnection, ServerConnection

    client = ClientConnection("example.com", "/", max_message_size=LIMIT)
    server = ServerConnection(max_message_size=LIMIT)
    server.receive_data(client.data_to_send())
    list(server.events())
    server.accept()
    client.receive_data(server.data_to_send())
    list(client.events())
    target = server if side == "server" else client

    def feed(data: bytes) -> None:
        target.receive_data(data)
        list(target.events())
        target.data_to_send()

    return feed, lambda: target.close_code


def _websockets(side: str) -> tuple[Callable[[bytes], None], Callable[[], int | None]]:
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import (
        ClientPerMessageDeflateFactory,
        ServerPerMessageDeflateFactory,
    )
    from websockets.http11 import Request
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    client = ClientProtocol(
        parse_uri("ws://example.com/"),
        extensions=[ClientPerMessageDeflateFactory()],
        max_size=LIMIT,
    )
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()], max_size=LIMIT)
    client.send_request(client.connect())
    server.receive_data(client.data_to_send()[0])
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    client.receive_data(b"".join(server.data_to_send()))
    client.events_received()
    assert client.extensions, "permessage-deflate was not negotiated"
    assert server.extensions, "permessage-deflate was not negotiated"
    target: Any = server if side == "server" else client

    def feed(data: bytes) -> None:
        target.receive_data(data)
        target.events_received()
        target.data_to_send()

    return feed, lambda: target.close_sent.code if target.close_sent else None


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(implementation: str, side: str, path: str, count: int) -> None:
    """Feed the bomb in ``path`` to ``count`` fresh connections; print the measurements."""
    with open(path, "rb") as file:
        bomb = file.read()
    opener = _ours if implementation == "ours" else _websockets
    opener(side)[0](b"")  # imports and first-use allocations outside the measurement
    base = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset VmHWM, the RSS high-water mark, to the current RSS
    codes: set[int | None] = set()
    start = time.process_time()
    for _ in range(count):
        feed, close_code = opener(side)
        feed(bomb)
        codes.add(close_code())
        del feed, close_code
    cpu = time.process_time() - start
    result = {
        "peak_mb": (_rss_kib("VmHWM") - base) / 1024,
        "kept_mb": (_rss_kib("VmRSS") - base) / 1024,
        "cpu_ms": cpu * 1000,
        "codes": sorted(code for code in codes if code is not None),
    }
    print(json.dumps(result))


# -- the parent: one child per bomb and implementation -----------------------------------------

SCENARIOS = [
    ("1 GiB in one frame, to a server", "server", "to-server", 1),
    ("1 GiB in one frame, to a client", "client", "to-client", 1),
    ("64 MiB over 4,096 frames, to a server", "server", "fragmented", 1),
    ("8 bombs one after another", "server", "to-server", 8),
    ("60 bombs one after another", "server", "to-server", 60),
]


def _run_child(implementation: str, side: str, path: str, count: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", implementation, side, path, str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs > 0.05 else "-"


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        paths = build_bombs(directory)
        print(f"bombs built in {time.perf_counter() - started:.1f} s; limit 1 MiB\n")
        header = f"{'bomb':40} {'impl':10} {'peak MB':>8} {'kept MB':>8} {'CPU ms':>8} {'code':>6}"
        print(header)
        print("-" * len(header))
        for title, side, bomb, count in SCENARIOS:
            results = {
                implementation: _run_child(implementation, side, paths[bomb], count)
                for implementation in ("ours", "websockets")
            }
            for implementation, result in results.items():
                print(
                    f"{title if implementation == 'ours' else '':40} {implementation:10} "
                    f"{result['peak_mb']:8.1f} {result['kept_mb']:8.1f} {result['cpu_ms']:8.1f} "
                    f"{','.join(str(code) for code in result['codes']) or 'none':>6}"
                )
            ours, theirs = results["ours"], results["websockets"]
            print(
                f"{'':40} {'ratio':10} {_ratio(ours['peak_mb'], theirs['peak_mb']):>8} "
                f"{_ratio(ours['kept_mb'], theirs['kept_mb']):>8} "
                f"{_ratio(ours['cpu_ms'], theirs['cpu_ms']):>8}"
            )
        print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
