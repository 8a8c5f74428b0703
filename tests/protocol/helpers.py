"""Frame builders and an open connection pair for core tests."""

from __future__ import annotations

import os
import struct

from panther_ws.protocol import ClientConnection, ServerConnection


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def open_pair(
    *, max_message_size: int = 1 << 20, deflate: bool = False, subprotocols: tuple[str, ...] = ()
) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(
        "example.com",
        "/chat?x=1",
        subprotocols=subprotocols,
        max_message_size=max_message_size,
        permessage_deflate=deflate,
    )
    server = ServerConnection(max_message_size=max_message_size, permessage_deflate=deflate)
    server.receive_data(client.data_to_send())
    list(server.events())
    server.accept(subprotocols[0] if subprotocols else None)
    client.receive_data(server.data_to_send())
    list(client.events())
    return client, server


def pump(
    source: ClientConnection | ServerConnection, target: ClientConnection | ServerConnection
) -> list[object]:
    target.receive_data(source.data_to_send())
    return list(target.events())
