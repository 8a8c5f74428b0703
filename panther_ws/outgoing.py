"""A value as the ASGI message that sends it, for a handler's ``send`` and a group send alike.

Built on :func:`~panther_ws.protocol.payloads.as_payload`, so a value reads the same on the
wire whoever sent it: str as text, bytes-like as binary, anything else as compact JSON.
"""

from __future__ import annotations

from typing import Any

from panther_ws.hosting.types import ASGIMessage
from panther_ws.protocol.payloads import as_payload


def websocket_send(data: Any) -> ASGIMessage:
    """The ``websocket.send`` message carrying ``data``."""
    if type(data) is str:  # most messages: one check instead of as_payload's two
        return {"type": "websocket.send", "text": data}
    payload = as_payload(data)
    if isinstance(payload, str):
        return {"type": "websocket.send", "text": payload}
    return {"type": "websocket.send", "bytes": payload}
