"""An async test harness for any ASGI websocket app: in memory, no network, no hangs."""

from panther_ws.network.session import ReceiveTimeout, WebsocketClosed, WebsocketRejected
from panther_ws_testing._differences import ServerDifferenceWarning
from panther_ws_testing._exceptions import AppCrashed, AppIgnoredCancellation
from panther_ws_testing.client import WebsocketTestClient, WebsocketTestSession
from panther_ws_testing.compat import WebsocketClient
from panther_ws_testing.sync import SyncWebsocketTestClient

__all__ = [
    "AppCrashed",
    "AppIgnoredCancellation",
    "ReceiveTimeout",
    "ServerDifferenceWarning",
    "SyncWebsocketTestClient",
    "WebsocketClient",
    "WebsocketClosed",
    "WebsocketRejected",
    "WebsocketTestClient",
    "WebsocketTestSession",
]
