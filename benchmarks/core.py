"""Parse and serialize throughput of the sans-IO core vs bare wsproto and websockets.

    python benchmarks/core.py

Handshake: one in-memory upgrade, both halves (our ``ClientConnection`` and ``ServerConnection``,
with the handshake's fast path and with it switched off, i.e. wsproto's handshake on h11, vs
``websockets``' sans-IO ``ClientProtocol`` and ``ServerProtocol``), and the server's half alone
(a request already in bytes in, the 101 out); no compression offered.

Parse: a server consumes masked client frames (what every server does), all in one read
("parse"), and one frame per read ("parse/read": what a server reading small messages as they
come does; per-read costs count). Serialize: a server produces unmasked frames. Same payloads, same run; medians of 9 runs taken in turns; ratios against bare
wsproto (our core is built on it, so the ratio is our own overhead). Each run starts from an
open connection made outside the timed region: bare wsproto's ``Connection`` has no
handshake, so timing ours would otherwise charge every run one handshake (~140 us, 9% of 128
sends of 64 KiB).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _timing import interleaved_medians
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto.connection import Connection as WsprotoConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage
from wsproto.frame_protocol import FrameProtocol

from panther_ws.protocol import ClientConnection, ServerConnection

SIZES = [32, 1024, 64 * 1024, 1024 * 1024]


def _count(size: int) -> int:
    # At least 64 messages a sample: 8 x 1 MiB (the old floor) took under a millisecond to
    # serialize, and their medians moved by a tenth between runs.
    return max(64, min(20_000, (32 * 1024 * 1024) // (size * 4)))


def masked_frames(size: int, count: int) -> list[bytes]:
    client = FrameProtocol(client=True, extensions=[])
    payload = os.urandom(size)
    return [bytes(client.send_data(payload)) for _ in range(count)]


def open_ours() -> ServerConnection:
    client = ClientConnection("h", "/", permessage_deflate=False)
    server = ServerConnection(max_message_size=2 << 20, permessage_deflate=False)
    server.receive_data(client.data_to_send())
    list(server.events())
    server.accept()
    server.data_to_send()
    return server


def open_websockets() -> ServerProtocol:
    protocol = ServerProtocol(max_size=2 << 20)
    protocol.receive_data(ClientConnection("h", "/", permessage_deflate=False).data_to_send())
    (request,) = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    return protocol


def open_wsproto() -> WsprotoConnection:
    return WsprotoConnection(ConnectionType.SERVER)


def parse_ours(server: ServerConnection, stream: bytes, count: int) -> None:
    server.receive_data(stream)
    assert sum(1 for _ in server.events()) == count


def parse_wsproto(connection: WsprotoConnection, stream: bytes, count: int) -> None:
    connection.receive_data(stream)
    assert sum(1 for _ in connection.events()) == count


def parse_websockets(protocol: ServerProtocol, stream: bytes, count: int) -> None:
    protocol.receive_data(stream)
    assert len(protocol.events_received()) == count


def parse_reads_ours(server: ServerConnection, frames: list[bytes], count: int) -> None:
    for frame in frames:
        server.receive_data(frame)
        for _ in server.events():
            pass


def parse_reads_wsproto(connection: WsprotoConnection, frames: list[bytes], count: int) -> None:
    for frame in frames:
        connection.receive_data(frame)
        for _ in connection.events():
            pass


def parse_reads_websockets(protocol: ServerProtocol, frames: list[bytes], count: int) -> None:
    for frame in frames:
        protocol.receive_data(frame)
        protocol.events_received()


def serialize_ours(server: ServerConnection, payload: bytes, count: int) -> None:
    for _ in range(count):  # a server drains the bytes after every send
        server.send(payload)
        server.data_to_send()


def serialize_wsproto(connection: WsprotoConnection, payload: bytes, count: int) -> None:
    for _ in range(count):  # wsproto returns each frame's bytes directly
        connection.send(BytesMessage(data=payload))


def serialize_websockets(protocol: ServerProtocol, payload: bytes, count: int) -> None:
    for _ in range(count):
        protocol.send_frame(Frame(Opcode.BINARY, payload))
        protocol.data_to_send()


OPENERS = {"ours": open_ours, "wsproto": open_wsproto, "websockets": open_websockets}

HANDSHAKES = 2000


class _ServerViaWsproto(ServerConnection):
    _fast_handshake = False


class _ClientViaWsproto(ClientConnection):
    _fast_handshake = False


def handshake_ours(
    client_class: type[ClientConnection] = ClientConnection,
    server_class: type[ServerConnection] = ServerConnection,
) -> None:
    for _ in range(HANDSHAKES):
        client = client_class("example.com", "/chat", permessage_deflate=False)
        server = server_class(permessage_deflate=False)
        server.receive_data(client.data_to_send())
        for _ in server.events():
            pass
        server.accept()
        client.receive_data(server.data_to_send())
        for _ in client.events():
            pass


def handshake_websockets() -> None:
    uri = parse_uri("ws://example.com/chat")
    for _ in range(HANDSHAKES):
        client = ClientProtocol(uri)
        client.send_request(client.connect())
        server = ServerProtocol()
        server.receive_data(b"".join(client.data_to_send()))
        (request,) = server.events_received()
        server.send_response(server.accept(request))
        client.receive_data(b"".join(server.data_to_send()))
        client.events_received()


def server_half_ours(request: bytes, server_class: type[ServerConnection]) -> None:
    for _ in range(HANDSHAKES):
        server = server_class(permessage_deflate=False)
        server.receive_data(request)
        for _ in server.events():
            pass
        server.accept()
        server.data_to_send()


def server_half_websockets(request: bytes) -> None:
    for _ in range(HANDSHAKES):
        server = ServerProtocol()
        server.receive_data(request)
        (event,) = server.events_received()
        server.send_response(server.accept(event))
        server.data_to_send()


def handshakes() -> None:
    """Microseconds per handshake, both halves and the server's alone, against websockets."""
    request = ClientConnection("example.com", "/chat", permessage_deflate=False).data_to_send()
    # One interleaved run for all six, so a slow spell of the machine hits them alike.
    runs: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]] = {
        "ours": (lambda: None, lambda _: handshake_ours()),
        "ours/wsproto": (
            lambda: None,
            lambda _: handshake_ours(_ClientViaWsproto, _ServerViaWsproto),
        ),
        "websockets": (lambda: None, lambda _: handshake_websockets()),
        "server ours": (lambda: None, lambda _: server_half_ours(request, ServerConnection)),
        "server ours/wsproto": (
            lambda: None,
            lambda _: server_half_ours(request, _ServerViaWsproto),
        ),
        "server websockets": (lambda: None, lambda _: server_half_websockets(request)),
    }
    seconds = interleaved_medians(runs)
    both = {name: seconds[name] for name in ("ours", "ours/wsproto", "websockets")}
    server = {name: seconds["server " + name] for name in both}
    print(
        f"{'handshake':>14} {'both us':>9} {'server us':>10} {'client us':>10} {'vs websockets':>14}"
    )
    for name in both:
        total, half = both[name] / HANDSHAKES * 1e6, server[name] / HANDSHAKES * 1e6
        ratio = both[name] / both["websockets"]
        print(f"{name:>14} {total:>9.1f} {half:>10.1f} {total - half:>10.1f} {ratio:>13.2f}x")
    print("(client = both - server; websockets' server adds a Date header, ours does not)")
    print()


def main() -> None:
    handshakes()
    print(f"{'size':>8} {'op':>10} {'impl':>10} {'msgs/s':>12} {'MB/s':>9} {'vs wsproto':>11}")
    for size in SIZES:
        count = _count(size)
        frames = masked_frames(size, count)
        stream = b"".join(frames)
        payload = os.urandom(size)
        for op, impls in (
            (
                "parse",
                {"ours": parse_ours, "wsproto": parse_wsproto, "websockets": parse_websockets},
            ),
            (
                "parse/read",
                {
                    "ours": parse_reads_ours,
                    "wsproto": parse_reads_wsproto,
                    "websockets": parse_reads_websockets,
                },
            ),
            (
                "serialize",
                {
                    "ours": serialize_ours,
                    "wsproto": serialize_wsproto,
                    "websockets": serialize_websockets,
                },
            ),
        ):
            argument = {"parse": stream, "parse/read": frames}.get(op, payload)
            seconds = interleaved_medians(
                {
                    name: (OPENERS[name], lambda c, f=f, a=argument, n=count: f(c, a, n))
                    for name, f in impls.items()
                }
            )
            for name, elapsed in seconds.items():
                rate = count / elapsed
                ratio = elapsed / seconds["wsproto"]
                print(
                    f"{size:>8} {op:>10} {name:>10} {rate:>12,.0f} {rate * size / 1e6:>9.1f} {ratio:>10.2f}x"
                )


if __name__ == "__main__":
    main()
