"""Frame builders and an open connection pair for core tests."""

from __future__ import annotations

import os
import struct

from panther_ws.protocol import ClientConnection, ServerConnection, _framing
from panther_ws_testing.strategies import encode_frame

# websockets' C masker, as the core found it at import (None without the speedups extra).
C_MASK = _framing.apply_mask


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask=os.urandom(4) if mask else None, rsv=rsv)


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
