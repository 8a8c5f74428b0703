"""The ASGI bridge: hosts an ASGI app's ``websocket`` scope on the sans-IO core.

Still sans-IO: it builds scopes and translates messages; the server that embeds it does the
I/O and runs the app. Also the single place that knows what an ASGI app is allowed to send and
when; the test harness and the reference server both check every app message here, so a spec
violation reads the same everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from panther_ws.protocol.close_codes import is_sendable_close_code
from panther_ws.protocol.connection import CONNECTING, MAX_CLOSE_REASON_BYTES, OPEN
from panther_ws.protocol.events import Closed, Event, Message, Request
from panther_ws.protocol.server import ServerConnection


class ASGIProtocolError(Exception):
    """The ASGI app sent a message the ASGI websocket spec does not allow at that point."""


class Leniency(enum.Enum):
    """A spec violation the validator let pass, because real servers do not break on it.

    Before accept, a ``websocket.close`` becomes a bare HTTP 403: its code and reason never
    reach the wire, so uvicorn, hypercorn and ``panther-ws serve`` all answer 403 whatever
    they are (FastAPI sends a list as the reason of its validation rejection). A strict
    validator raises instead.
    """

    NON_STR_CLOSE_REASON = "a non-str reason in 'websocket.close' before accept"
    UNSENDABLE_CLOSE_BEFORE_ACCEPT = (
        "a close code or reason before accept that no close frame could carry"
    )


class _AppState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    RESPONDING = "sending a denial response"
    CLOSED = "closed"


# As module names, for the reason ``protocol.connection`` gives for its states' names.
_APP_CONNECTING = _AppState.CONNECTING
_APP_OPEN = _AppState.OPEN
_APP_RESPONDING = _AppState.RESPONDING
_APP_CLOSED = _AppState.CLOSED


class ASGIAppMessageValidator:
    """Tracks one app's ``send`` calls and rejects the ones the spec forbids.

    ``check(message)`` returns None for a valid message, the :class:`Leniency` it applied
    for a violation real servers tolerate (``strict=True`` raises for those too), and raises
    :class:`ASGIProtocolError` naming what the app did wrong otherwise. ``denial_response``
    says whether the server offers the ``websocket.http.response`` extension.
    """

    # Where a new validator is: class defaults, so that making one (at every connect) sets
    # only what differs. Attributes, not properties: every message of every connection
    # reads them.
    _state = _APP_CONNECTING
    accepted = False
    """Accepted and not closed since: a close now would be a close frame."""
    responding = False
    """The app started a denial response and has not sent its last body chunk."""
    finished = False
    """The app has closed, rejected, or sent the last body chunk of its denial response."""

    def __init__(self, strict: bool = False, denial_response: bool = True) -> None:
        self._denial_response = denial_response
        self._strict = strict

    def _enter(self, state: _AppState) -> None:
        self._state = state
        self.accepted = state is _APP_OPEN
        self.responding = state is _APP_RESPONDING
        self.finished = state is _APP_CLOSED

    def check(self, message: Mapping[str, Any]) -> Leniency | None:
        # A dict, nearly always: its type is checked before the slower ABC's.
        is_mapping = type(message) is dict or isinstance(message, Mapping)
        message_type = message.get("type") if is_mapping else None
        if not isinstance(message_type, str):
            raise ASGIProtocolError(
                f"the app sent {message!r}, which is not a dict with a string 'type'"
            )
        state = self._state
        if state is _APP_CLOSED:
            raise ASGIProtocolError(
                f"the app sent {message_type!r} after the websocket was closed; "
                "nothing may be sent after 'websocket.close' or a finished denial response"
            )
        if message_type == "websocket.accept":
            self._check_accept(message)
        elif message_type == "websocket.send":
            self._check_send(message)
        elif message_type == "websocket.close":
            leniency = None
            try:
                _check_close(message)
            except ASGIProtocolError:
                if self._strict or state is _APP_OPEN:
                    raise
                reason = message.get("reason") or ""
                leniency = (
                    Leniency.UNSENDABLE_CLOSE_BEFORE_ACCEPT
                    if isinstance(reason, str)
                    else Leniency.NON_STR_CLOSE_REASON
                )
            self._enter(_APP_CLOSED)
            return leniency
        elif message_type == "websocket.http.response.start":
            self._check_response_start(message)
        elif message_type == "websocket.http.response.body":
            self._check_response_body(message)
        else:
            raise ASGIProtocolError(
                f"the app sent an unknown message type {message_type!r} in state "
                f"{state.value}; a websocket app may send 'websocket.accept', "
                "'websocket.send', 'websocket.close' or 'websocket.http.response.*'"
            )
        return None

    def _check_accept(self, message: Mapping[str, Any]) -> None:
        if self._state is not _APP_CONNECTING:
            raise ASGIProtocolError(
                f"the app sent 'websocket.accept' in state {self._state.value}; "
                "a connection can be accepted only once, before anything else is sent"
            )
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise ASGIProtocolError(
                f"'websocket.accept' has subprotocol {subprotocol!r}; it must be a str or None"
            )
        headers = message.get("headers")
        if headers is not None:
            _check_headers("websocket.accept", headers)
        self._enter(_APP_OPEN)

    def _check_send(self, message: Mapping[str, Any]) -> None:
        if self._state is not _APP_OPEN:
            raise ASGIProtocolError(
                f"the app sent 'websocket.send' in state {self._state.value}; "
                "send 'websocket.accept' first"
            )
        data_bytes, text = message.get("bytes"), message.get("text")
        if (data_bytes is None) == (text is None):
            raise ASGIProtocolError(
                "'websocket.send' must carry exactly one of 'bytes' and 'text', got "
                f"bytes={data_bytes!r:.40} text={text!r:.40}"
            )
        if text is not None and not isinstance(text, str):
            raise ASGIProtocolError(f"'websocket.send' has text of type {type(text).__name__}")
        if data_bytes is not None and not isinstance(data_bytes, bytes | bytearray):
            raise ASGIProtocolError(
                f"'websocket.send' has bytes of type {type(data_bytes).__name__}"
            )

    def _check_response_start(self, message: Mapping[str, Any]) -> None:
        if not self._denial_response:
            raise ASGIProtocolError(
                "the app sent 'websocket.http.response.start' but the server does not offer "
                "the websocket.http.response extension"
            )
        if self._state is not _APP_CONNECTING:
            raise ASGIProtocolError(
                f"the app sent 'websocket.http.response.start' in state {self._state.value}; "
                "a denial response must come before 'websocket.accept'"
            )
        status = message.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ASGIProtocolError(
                f"'websocket.http.response.start' has status {status!r}; it must be an int 100-599"
            )
        _check_headers("websocket.http.response.start", message.get("headers"))
        self._enter(_APP_RESPONDING)

    def _check_response_body(self, message: Mapping[str, Any]) -> None:
        if self._state is not _APP_RESPONDING:
            raise ASGIProtocolError(
                f"the app sent 'websocket.http.response.body' in state {self._state.value}; "
                "send 'websocket.http.response.start' first"
            )
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray):
            raise ASGIProtocolError(
                f"'websocket.http.response.body' has body of type {type(body).__name__}"
            )
        if not message.get("more_body", False):
            self._enter(_APP_CLOSED)


def _check_close(message: Mapping[str, Any]) -> None:
    code = message.get("code", 1000)
    if code is None:
        code = 1000
    if not isinstance(code, int) or not is_sendable_close_code(code):
        raise ASGIProtocolError(
            f"'websocket.close' has code {code!r}, which an endpoint may not send; "
            "use 1000-1003, 1007-1014 or 3000-4999"
        )
    reason = message.get("reason") or ""
    if not isinstance(reason, str):
        raise ASGIProtocolError(f"'websocket.close' has reason of type {type(reason).__name__}")
    size = len(reason.encode("utf-8"))
    if size > MAX_CLOSE_REASON_BYTES:
        raise ASGIProtocolError(
            f"'websocket.close' has a reason of {size} UTF-8 bytes; "
            f"a close frame holds at most {MAX_CLOSE_REASON_BYTES}"
        )


def _check_headers(message_type: str, headers: object) -> None:
    # Panther sends ``headers: {}``: an empty mapping is accepted as "no headers".
    if headers is None or (isinstance(headers, Mapping) and not headers):
        return
    if isinstance(headers, Mapping) or not all(
        isinstance(pair, list | tuple)
        and len(pair) == 2
        and all(isinstance(part, bytes | bytearray) for part in pair)
        for pair in headers  # type: ignore[attr-defined]
    ):
        raise ASGIProtocolError(
            f"{message_type!r} has headers {headers!r:.80}; they must be an iterable of "
            "[name, value] byte pairs"
        )


class ClientDisconnected(OSError):
    """The app sent data after the client had gone (ASGI spec: sends then raise)."""


def build_scope(
    request: Request,
    *,
    client: tuple[str, int] | None = None,
    server: tuple[str, int] | None = None,
    scheme: str = "ws",
    root_path: str = "",
) -> dict[str, Any]:
    """The ASGI ``websocket`` connection scope for a completed upgrade request."""
    raw_path = request.path.encode("latin-1", errors="replace")
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "path": unquote(request.path),
        "raw_path": raw_path,
        "root_path": root_path,
        "query_string": request.query_string,
        "headers": [_lowercase(pair) for pair in request.headers],
        "subprotocols": list(request.subprotocols),
        "client": list(client) if client is not None else None,
        "server": list(server) if server is not None else None,
        "extensions": scope_extensions(),
        "state": {},
    }


def _lowercase(pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    # The request's own pair where its name is lowercase already (h11's names are, and the
    # fast handshake's): a scope lives as long as its connection, and a copy of every name
    # and pair was ~0.7 KiB of an idle one.
    name = pair[0]
    if type(pair) is tuple and name.islower():
        return pair
    return (name.lower(), pair[1])


def scope_extensions() -> dict[str, dict[str, Any]]:
    """A scope's ``extensions``, made anew for each scope: an app may change them."""
    return {"websocket.http.response": {}}


class DenialResponse:
    """The app's ``websocket.http.response`` denial, gathered until its last body part.

    Every embedder answers a denial the same way, so it is collected in one place; the
    validator has already checked the order and the types, so this only gathers them.
    """

    __slots__ = ("_body", "headers", "status")

    def __init__(self, start: Mapping[str, Any]) -> None:
        self.status: int = start["status"]
        self.headers = [(bytes(name), bytes(value)) for name, value in start.get("headers") or ()]
        self._body = bytearray()

    def add(self, body: Mapping[str, Any]) -> bytes | None:
        """The whole body once ``body`` is the last part; None while more is coming."""
        self._body += body.get("body", b"")
        return None if body.get("more_body", False) else bytes(self._body)


class ASGIConnectionBridge:
    """Hosts one ASGI websocket session on a :class:`ServerConnection`.

    The server's byte pump owns the I/O; this object only translates. Give the app
    :meth:`connect_message` first, then :meth:`receive_message_for` each core event (``None``
    means the event is not the app's business, such as a ping), and pass every message the
    app sends to :meth:`apply_app_message`, which validates it and drives the connection.
    """

    def __init__(
        self,
        connection: ServerConnection,
        request: Request,
        *,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
        scheme: str = "ws",
        root_path: str = "",
        strict: bool = False,
    ) -> None:
        self.connection = connection
        self.scope = build_scope(
            request, client=client, server=server, scheme=scheme, root_path=root_path
        )
        self._validator = ASGIAppMessageValidator(strict)
        self._denial: DenialResponse | None = None

    @property
    def finished(self) -> bool:
        """The app has closed, rejected, or finished its denial response."""
        return self._validator.finished

    @property
    def accepted(self) -> bool:
        """The app accepted and has not closed since."""
        return self._validator.accepted

    @property
    def responding(self) -> bool:
        """The app is sending a denial response."""
        return self._validator.responding

    @property
    def peer_connected(self) -> bool:
        """The client has not closed or vanished: what the app sends can still reach it."""
        return self.connection.state in (CONNECTING, OPEN)

    @staticmethod
    def connect_message() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    @staticmethod
    def receive_message_for(event: Event) -> dict[str, Any] | None:
        if isinstance(event, Message):
            if isinstance(event.data, str):
                return {"type": "websocket.receive", "text": event.data}
            return {"type": "websocket.receive", "bytes": event.data}
        if isinstance(event, Closed):
            return {"type": "websocket.disconnect", "code": event.code, "reason": event.reason}
        return None

    def apply_app_message(self, message: Mapping[str, Any]) -> Leniency | None:
        """Validate one app message and turn it into core calls (bytes in data_to_send()).

        Returns the :class:`Leniency` the validator applied, if any.
        """
        leniency = self._validator.check(message)
        message_type = message["type"]
        connection = self.connection
        if message_type == "websocket.accept":
            if connection.state is not CONNECTING:
                raise ClientDisconnected("the client went away before the app accepted")
            connection.accept(
                subprotocol=message.get("subprotocol"),
                headers=message.get("headers") or (),
            )
        elif message_type == "websocket.send":
            if connection.state is not OPEN:
                raise ClientDisconnected(
                    f"the app sent a message in state {connection.state.value}; "
                    "the client has disconnected"
                )
            text = message.get("text")
            connection.send(text if text is not None else bytes(message["bytes"]))
        elif message_type == "websocket.close":
            if connection.state is CONNECTING:
                connection.reject(403)
            elif connection.state is OPEN:
                connection.close(message.get("code") or 1000, message.get("reason") or "")
        elif message_type == "websocket.http.response.start":
            self._denial = DenialResponse(message)
        else:  # websocket.http.response.body, after its start (the validator saw to it)
            denial = self._denial
            assert denial is not None
            body = denial.add(message)
            if body is not None and connection.state is CONNECTING:
                connection.reject(denial.status, denial.headers, body)
        return leniency
