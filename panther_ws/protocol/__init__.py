"""The sans-IO WebSocket core: bytes in, events out; calls in, bytes out. No I/O, no loop."""

from panther_ws.protocol.exceptions import ProtocolError

__all__ = ["ProtocolError"]
