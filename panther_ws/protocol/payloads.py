"""What a value becomes on the wire when it is sent as a message, for every sender.

Handlers, the network client and the test client all accept "anything": a ``str`` is a
text message, bytes-like data a binary one, and anything else compact JSON text (orjson),
so ``send({"detail": "ok"})`` reads the same from every side of a test.
"""

from __future__ import annotations

from typing import Any

import orjson


def as_payload(data: Any) -> str | bytes:
    """``data`` as a message payload: str as text, bytes-like as binary, else JSON text."""
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    return orjson.dumps(data).decode()
