"""How a test session's actions reach the app and back: directly, or as real frames.

A link turns client actions into ASGI messages for the app, and the app's ASGI messages
into core events for the client (:class:`Accepted`, :class:`Message`, :class:`Closed`,
:class:`Rejection`). The direct link maps one to one; the wire link runs every message
through :class:`ClientConnection` -> bytes -> :class:`ServerConnection` and back, so
masking, fragmentation, UTF-8 and close validation are exercised. Both validate the app's
messages with the core's :class:`ASGIAppMessageValidator`, so a spec violation reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panther_ws.protocol import ClientConnection, ConnectionState, ProtocolError, ServerConnection
from panther_ws.protocol.asgi import (
    ASGIAppMessageValidator,
    ASGIConnectionBridge,
    ClientDisconnected,
)
from panther_ws.protocol.connection import MAX_CONTROL_PAYLOAD
from panther_ws.protocol.events import (
    Accepted,
    Closed,
    Event,
    Message,
    Pong,
    Rejected,
    Request,
)
from panther_ws_testing._mailbox import Mailbox
from panther_ws_testing._transcript import Transcript


@dataclass(frozen=True)
class Rejection(Event):
    """The app refused the connection: what it sent, and what a client on the wire sees."""

    status_code: int
    code: int | None = None
    reason: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class Ends:
    """Where a link delivers: the app's inbox (and the transcript) and the client's inbox.

    A link holds this rather than methods of its session, so a finished session is no
    reference cycle: it is freed at once instead of by the cycle collector, whose passes
    cost a suite with thousands of connections more than the connections themselves.
    """

    __slots__ = ("app_inbox", "client_inbox", "transcript")

    def __init__(
        self,
        app_inbox: Mailbox,
        client_inbox: Mailbox,
        transcript: Transcript,
    ) -> None:
        self.app_inbox = app_inbox
        self.client_inbox = client_inbox
        self.transcript = transcript

    def to_app(self, message: dict[str, Any]) -> None:
        self.transcript.append(("client", message))
        self.app_inbox.put(message)


class DirectLink:
    """ASGI messages handed over as they are: the fastest way to test an app."""

    def __init__(self, ends: Ends) -> None:
        self._to_app = ends.to_app
        self._to_client = ends.client_inbox.put
        self._validator = ASGIAppMessageValidator(denial_response=True)
        self._denial: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self._denial_body = bytearray()
        self.client_closed = False

    def connect(self) -> None:
        self._to_app({"type": "websocket.connect"})

    def client_send(self, data: str | bytes) -> None:
        key = "text" if isinstance(data, str) else "bytes"
        self._to_app({"type": "websocket.receive", key: data})

    def client_ping(self, payload: bytes) -> bool:
        """ASGI has no ping: a server answers it without the app, so there is nothing to do.

        The payload is checked as on the wire, so a test behaves the same in both modes.
        """
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(
                f"ping() payload is {len(payload)} bytes; a control frame holds at most "
                f"{MAX_CONTROL_PAYLOAD}"
            )
        return not self.client_closed

    def client_close(self, code: int, reason: str) -> None:
        self.client_closed = True
        self._to_app({"type": "websocket.disconnect", "code": code, "reason": reason})

    def app_send(self, message: Mapping[str, Any]) -> None:
        was_accepted = self._validator.accepted
        self._validator.check(message)
        message_type = message["type"]
        if message_type == "websocket.send":
            if self.client_closed:
                raise ClientDisconnected("the app sent a message after the client disconnected")
            text = message.get("text")
            self._to_client(Message(text if text is not None else bytes(message["bytes"])))
        elif message_type == "websocket.accept":
            headers = message.get("headers") or ()
            self._to_client(
                Accepted(
                    message.get("subprotocol"), tuple((bytes(k), bytes(v)) for k, v in headers)
                )
            )
        elif message_type == "websocket.close":
            code, reason = message.get("code") or 1000, message.get("reason") or ""
            if was_accepted:
                self._to_client(Closed(code, reason))
                self._disconnect_app(code, reason)
            else:
                self._to_client(Rejection(403, code, reason))
                self._disconnect_app(1006, "")
        elif message_type == "websocket.http.response.start":
            self._denial = (
                message["status"],
                [(bytes(k), bytes(v)) for k, v in message.get("headers") or ()],
            )
        else:
            self._denial_body += message.get("body", b"")
            if not message.get("more_body", False) and self._denial is not None:
                status, headers = self._denial
                self._to_client(Rejection(status, headers=headers, body=bytes(self._denial_body)))
                self._disconnect_app(1006, "")

    def _disconnect_app(self, code: int, reason: str) -> None:
        # A real server tells the app the socket is gone once it has closed or rejected.
        if not self.client_closed:
            self.client_closed = True
            self._to_app({"type": "websocket.disconnect", "code": code, "reason": reason})


class WireLink:
    """Every message crosses real WebSocket bytes, optionally split into small fragments."""

    def __init__(
        self,
        ends: Ends,
        *,
        host: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        subprotocols: list[str],
        fragment_size: int | None,
        max_message_size: int,
        permessage_deflate: bool,
        scope_extras: Mapping[str, Any],
    ) -> None:
        self._to_app = ends.to_app
        self._to_client = ends.client_inbox.put
        self._fragment_size = fragment_size
        self._client = ClientConnection(
            host,
            path,
            headers=headers,
            subprotocols=subprotocols,
            max_message_size=max_message_size,
            permessage_deflate=permessage_deflate,
        )
        self._server = ServerConnection(
            max_message_size=max_message_size, permessage_deflate=permessage_deflate
        )
        self._scope_extras = scope_extras
        self.bridge: ASGIConnectionBridge | None = None
        self._pending_close: tuple[int, str] | None = None
        self._pongs: list[bytes] = []
        self.client_closed = False

    def connect(self) -> dict[str, Any]:
        """Run the handshake's request half; returns the scope the server would build."""
        self._server.receive_data(self._client.data_to_send())
        (request,) = [event for event in self._server.events() if isinstance(event, Request)]
        self.bridge = ASGIConnectionBridge(
            self._server,
            request,
            client=self._scope_extras.get("client"),
            server=self._scope_extras.get("server"),
        )
        self._to_app({"type": "websocket.connect"})
        return self.bridge.scope

    def client_send(self, data: str | bytes) -> None:
        self._client.send(data, fragment_size=self._fragment_size)
        self._client_to_server()

    def client_ping(self, payload: bytes) -> bool:
        """Ping through both cores; True if the pong came back (a server core answers at once)."""
        if self.client_closed or self._client.state is not ConnectionState.OPEN:
            return False
        self._client.ping(payload)
        self._client_to_server()
        pongs, self._pongs = self._pongs, []
        return payload in pongs

    def client_close(self, code: int, reason: str) -> None:
        self.client_closed = True
        if self._client.state is ConnectionState.OPEN:
            self._client.close(code, reason)
            self._client_to_server()
        else:
            self._to_app({"type": "websocket.disconnect", "code": code, "reason": reason})

    def app_send(self, message: Mapping[str, Any]) -> None:
        assert self.bridge is not None
        if message.get("type") == "websocket.close" and not self.bridge.finished:
            self._pending_close = (message.get("code") or 1000, message.get("reason") or "")
        self.bridge.apply_app_message(message)
        self._server_to_client()

    def _client_to_server(self) -> None:
        data = self._client.data_to_send()
        if data:
            self._server.receive_data(data)
            self._deliver_server_events()
            self._server_to_client()

    def _server_to_client(self) -> None:
        data = self._server.data_to_send()
        if not data:
            return
        self._client.receive_data(data)
        for event in self._client.events():
            if isinstance(event, Rejected):
                code, reason = self._pending_close or (None, None)
                self._to_client(
                    Rejection(event.status_code, code, reason, list(event.headers), event.body)
                )
                self._disconnect_app()
            elif isinstance(event, Message | Accepted) or (
                isinstance(event, Closed) and not self.client_closed
            ):
                self._to_client(event)
            elif isinstance(event, Pong):
                self._pongs.append(event.payload)  # the core answered the server's pings
        self._client_to_server()

    def _deliver_server_events(self) -> None:
        assert self.bridge is not None
        for event in self._server.events():
            message = self.bridge.receive_message_for(event)
            if message is not None:
                self._to_app(message)

    def _disconnect_app(self) -> None:
        if not self.client_closed:
            self.client_closed = True
            self._to_app({"type": "websocket.disconnect", "code": 1006, "reason": ""})


Link = DirectLink | WireLink
