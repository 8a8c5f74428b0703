"""An async test harness for any ASGI websocket app: in memory, no network, no hangs."""

from panther_ws.session import ReceiveTimeout, WebsocketClosed, WebsocketRejected

__all__ = ["ReceiveTimeout", "WebsocketClosed", "WebsocketRejected"]
