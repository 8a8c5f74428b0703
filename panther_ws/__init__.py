"""Panther-style WebSockets on a sans-IO core over wsproto."""

from panther_ws import status
from panther_ws.app import App
from panther_ws.websocket import GenericWebsocket
from panther_ws.worker import (
    close_websocket_connection,
    send_message_to_group,
    send_message_to_websocket,
)

__all__ = [
    "App",
    "GenericWebsocket",
    "close_websocket_connection",
    "send_message_to_group",
    "send_message_to_websocket",
    "status",
]
