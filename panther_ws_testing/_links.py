"""How a test session's actions reach the app and back: directly, or as real frames.

A link is the :class:`~panther_ws.hosting.host.AppMessageSink` of the session's
:class:`~panther_ws.hosting.host.ConnectionHost` (the host the server uses): it turns client
actions into ASGI messages for the app, and the app's ASGI messages into core events for the
client (:class:`Accepted`, :class:`Message`, :class:`Closed`, :class:`Rejection`). The
direct link maps one to one; the wire link runs every message through
:class:`ClientConnection` -> bytes -> :class:`ServerConnection` and back, so masking,
fragmentation, UTF-8 and close validation are exercised. Both validate the app's messages
with the core's :class:`ASGIAppMessageValidator`, so a spec violation reads the same.

A close from the test reaches the app the way a close frame does on a network: after what
the app sends before it next waits for input (those sends succeed, their data is lost with
the client), at the latest once the app has sent a socket buffer's worth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panther_ws.hosting.host import AppInbox
from panther_ws.protocol import ClientConnection, ProtocolError, ServerConnection
from panther_ws.protocol.asgi import (
    ASGIAppMessageValidator,
    ASGIConnectionBridge,
    ClientDisconnected,
    DenialResponse,
    Leniency,
)
from panther_ws.protocol.connection import CLOSED, MAX_CONTROL_PAYLOAD, OPEN
from panther_ws.protocol.events import (
    Accepted,
    Closed,
    Event,
    Message,
    Pong,
    Rejected,
    Request,
)
from panther_ws_testing._mailbox import Inbox
from panther_ws_testing._transcript import Transcript


@dataclass(frozen=True)
class Rejection(Event):
    """The app refused the connection: what it sent, and what a client on the wire sees.

    ``reason`` is what the app sent, whatever its type (FastAPI sends a list).
    """

    status_code: int
    code: int | None = None
    reason: Any = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


# Most apps accept with neither a subprotocol nor headers: one event, immutable, serves them all.
_PLAIN_ACCEPT = Accepted()


class _Link:
    """What both links share: where they deliver, and the client's close on its way to the app.

    A link delivers to the app's inbox (and the transcript) and to the client's inbox, and
    holds those rather than its session or its host, so a finished session is no reference
    cycle: it is freed at once instead of by the cycle collector, whose passes cost a suite
    with thousands of connections more than the connections themselves.
    """

    # Until the test closes (class defaults: a connect sets only what it must).
    _lost = 0  # bytes the app sent after the test closed, lost with the client
    _closing = (1000, "")  # the test's close, until it reaches the app
    client_closed = False  # the test closed (or dropped) the connection

    def __init__(self, app: AppInbox, client_inbox: Inbox, transcript: Transcript) -> None:
        self.app = app
        self.client_inbox = client_inbox
        self.transcript = transcript
        self._to_client = client_inbox.put

    def to_app(self, message: dict[str, Any]) -> None:
        self.transcript.append(("client", message))
        self.app.deliver(message)

    def disconnect_app(self, code: int, reason: str) -> None:
        if not self.app.disconnected:
            message = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self.transcript.append(("client", message))
            self.app.disconnect(code, reason)

    def from_app(self, message: Mapping[str, Any]) -> None:
        transcript = self.transcript
        # Once the app has ended, what still arrives is the host's policy (500, 1000, 1011).
        transcript.append(("server" if self.app.app_done else "app", message))
        if len(transcript) > Transcript.LIMIT:
            transcript.trim()

    def client_close(self, code: int, reason: str) -> None:
        """The test closed: the app learns it when it next waits for input (see the module)."""
        self.client_closed = True
        self._closing = (code, reason)
        self.app.on_next_wait(self._close_reaches_app)

    def _close_reaches_app(self) -> None:
        raise NotImplementedError

    def _lost_message(self, data: str | bytes) -> None:
        """The app sent ``data`` after the test closed: lost, and at most a buffer's worth."""
        self._lost += len(data) + Inbox.MESSAGE_COST
        if self._lost > self.client_inbox.limit:
            self._close_reaches_app()


class DirectLink(_Link):
    """ASGI messages handed over as they are: the fastest way to test an app."""

    paused = False  # no bytes to hold back: see WireLink.pause_reading
    held = 0

    _denial: DenialResponse | None = None  # a denial response, until its last body part

    def __init__(
        self, app: AppInbox, client_inbox: Inbox, transcript: Transcript, strict: bool = False
    ) -> None:
        super().__init__(app, client_inbox, transcript)
        self._validator = ASGIAppMessageValidator(strict)

    # -- the sink ------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        return self._validator.accepted

    @property
    def responding(self) -> bool:
        return self._validator.responding

    @property
    def finished(self) -> bool:
        return self._validator.finished

    @property
    def peer_connected(self) -> bool:
        return not self.client_closed

    def apply_app_message(self, message: Mapping[str, Any]) -> Leniency | None:
        self.from_app(message)
        was_accepted = self._validator.accepted
        leniency = self._validator.check(message)
        message_type = message["type"]
        if message_type == "websocket.send":
            text = message.get("text")
            data = text if text is not None else bytes(message["bytes"])
            if not self.client_closed:
                self._to_client(Message(data))
            elif self.app.disconnected:
                raise ClientDisconnected("the app sent a message after the client disconnected")
            else:
                self._lost_message(data)
        elif message_type == "websocket.accept":
            subprotocol, headers = message.get("subprotocol"), message.get("headers")
            if subprotocol is None and not headers:
                self._to_client(_PLAIN_ACCEPT)
            else:
                pairs = tuple((bytes(k), bytes(v)) for k, v in headers or ())
                self._to_client(Accepted(subprotocol, pairs))
        elif message_type == "websocket.close":
            code, reason = message.get("code") or 1000, _reason(message)
            if was_accepted:
                if not self.client_closed:
                    self.client_closed = True
                    self._to_client(Closed(code, reason or ""))
                self.disconnect_app(code, reason or "")  # the client answers at once
            else:
                self._to_client(Rejection(403, code, reason))
        elif message_type == "websocket.http.response.start":
            self._denial = DenialResponse(message)
        elif self._denial is not None:  # a body part, after its start
            body = self._denial.add(message)
            if body is not None:
                denial = self._denial
                self._to_client(Rejection(denial.status, headers=denial.headers, body=body))
        return leniency

    # -- the client ----------------------------------------------------------------------

    def client_send(self, data: str | bytes) -> None:
        key = "text" if isinstance(data, str) else "bytes"
        self.to_app({"type": "websocket.receive", key: data})

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

    def _close_reaches_app(self) -> None:
        self.disconnect_app(*self._closing)

    def drop(self) -> None:
        """The connection ends without a close frame: the app sees 1006."""
        self.client_closed = True
        self.disconnect_app(1006, "")


class WireLink(_Link):
    """Every message crosses real WebSocket bytes, optionally split into small fragments."""

    def __init__(
        self,
        app: AppInbox,
        client_inbox: Inbox,
        transcript: Transcript,
        *,
        host: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        subprotocols: list[str],
        fragment_size: int | None,
        max_message_size: int,
        permessage_deflate: bool,
        scope_extras: Mapping[str, Any],
        strict: bool = False,
    ) -> None:
        super().__init__(app, client_inbox, transcript)
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
        self._server.receive_data(self._client.data_to_send())
        (request,) = [event for event in self._server.events() if isinstance(event, Request)]
        self.bridge = ASGIConnectionBridge(
            self._server,
            request,
            client=scope_extras.get("client"),
            server=scope_extras.get("server"),
            strict=strict,
        )
        self._pending_close: tuple[int | None, Any] = (None, None)
        self._pongs: list[bytes] = []
        self._held = bytearray()  # the app's bytes while the client does not read
        self.paused = False

    @property
    def scope(self) -> dict[str, Any]:
        """The scope the server built from the client core's real upgrade request."""
        return self.bridge.scope

    # -- the sink ------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        return self.bridge.accepted

    @property
    def responding(self) -> bool:
        return self.bridge.responding

    @property
    def finished(self) -> bool:
        return self.bridge.finished

    @property
    def peer_connected(self) -> bool:
        return not self.client_closed and self.bridge.peer_connected

    def apply_app_message(self, message: Mapping[str, Any]) -> Leniency | None:
        self.from_app(message)
        bridge = self.bridge
        if message.get("type") == "websocket.close" and not bridge.finished:
            self._pending_close = (message.get("code") or 1000, _reason(message))
        leniency = bridge.apply_app_message(message)
        self._server_to_client()
        return leniency

    # -- the client ----------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Bytes the app sent that the paused client has not taken."""
        return len(self._held)

    def client_send(self, data: str | bytes) -> None:
        self._client.send(data, fragment_size=self._fragment_size)
        self._client_to_server()

    def client_ping(self, payload: bytes) -> bool:
        """Ping through both cores; True if the pong came back (a server core answers at once)."""
        if self.client_closed or self._client.state is not OPEN:
            return False
        self._client.ping(payload)
        self._client_to_server()
        pongs, self._pongs = self._pongs, []
        return payload in pongs

    def _close_reaches_app(self) -> None:
        if self._client.state is OPEN:
            self._client.close(*self._closing)
            self._client_to_server()
        else:
            self.disconnect_app(*self._closing)

    def drop(self) -> None:
        """The connection ends without a close frame: the app sees 1006."""
        self.client_closed = True
        if self._server.state is not CLOSED:
            self._server.receive_data(None)
            self._deliver_server_events()
        self.disconnect_app(1006, "")

    def send_raw(self, data: bytes) -> None:
        """``data`` reaches the server core as the client's socket would write it."""
        try:
            self._server.receive_data(data)
        except ProtocolError:
            pass  # the core failed the connection: its close and event follow
        self._deliver_server_events()
        self._server_to_client()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self._server_to_client()

    def _client_to_server(self) -> None:
        data = self._client.data_to_send()
        if data:
            try:
                self._server.receive_data(data)
            except ProtocolError:
                pass  # bytes after the close: the core reports what it did about them
            self._deliver_server_events()
            self._server_to_client()

    def _server_to_client(self) -> None:
        data = self._server.data_to_send()
        if self.paused:
            self._held += data
            return
        if self._held:
            data, self._held = bytes(self._held) + data, bytearray()
        if not data:
            return
        try:
            self._client.receive_data(data)
        except ProtocolError:
            return  # after the client's close: nothing on that socket is read any more
        for event in self._client.events():
            if isinstance(event, Message):
                if self.client_closed:
                    self._lost_message(event.data)
                else:
                    self._to_client(event)
            elif isinstance(event, Rejected):
                code, reason = self._pending_close
                self._to_client(
                    Rejection(event.status_code, code, reason, list(event.headers), event.body)
                )
            elif isinstance(event, Accepted) or (
                isinstance(event, Closed) and not self.client_closed
            ):
                if isinstance(event, Closed):
                    self.client_closed = True
                self._to_client(event)
            elif isinstance(event, Pong):
                self._pongs.append(event.payload)  # the core answered the server's pings
        self._client_to_server()

    def _deliver_server_events(self) -> None:
        bridge = self.bridge
        for event in self._server.events():
            if isinstance(event, Closed):
                self.disconnect_app(event.code, event.reason)
                continue
            message = bridge.receive_message_for(event)
            if message is not None:
                self.to_app(message)


def _reason(close: Mapping[str, Any]) -> Any:
    """A close's reason as the app sent it (of any type: FastAPI's is a list); "" if none."""
    reason = close.get("reason")
    return "" if reason is None else reason


Link = DirectLink | WireLink
