"""The sans-IO WebSocket core: bytes in, events out; calls in, bytes out. No I/O, no loop."""

from panther_ws.protocol._headers import HeadersInput, normalize_headers
from panther_ws.protocol.client import ClientConnection
from panther_ws.protocol.connection import DEFAULT_MAX_MESSAGE_SIZE, Connection, ConnectionState
from panther_ws.protocol.events import (
    Accepted,
    Closed,
    Event,
    Message,
    Ping,
    Pong,
    Rejected,
    Request,
)
from panther_ws.protocol.exceptions import ProtocolError
from panther_ws.protocol.server import ServerConnection

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Accepted",
    "ClientConnection",
    "Closed",
    "Connection",
    "ConnectionState",
    "Event",
    "HeadersInput",
    "Message",
    "Ping",
    "Pong",
    "ProtocolError",
    "Rejected",
    "Request",
    "ServerConnection",
    "normalize_headers",
]
