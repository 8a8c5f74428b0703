"""An async test harness for any ASGI websocket app: in memory, no network, no hangs."""

from panther_ws.session import ReceiveTimeout, WebsocketClosed, WebsocketRejected
from panther_ws_testing.client import WebsocketTestClient, WebsocketTestSession

__all__ = [
    "ReceiveTimeout",
    "WebsocketClosed",
    "WebsocketRejected",
    "WebsocketTestClient",
    "WebsocketTestSession",
]
