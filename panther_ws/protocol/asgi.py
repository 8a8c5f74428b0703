"""The ASGI bridge: hosts an ASGI app's ``websocket`` scope on the sans-IO core.

Also the single place that knows what an ASGI app is allowed to send and when; the test
harness and the reference server both check every app message here, so a spec violation reads
the same everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from panther_ws.status import is_sendable_close_code

MAX_CLOSE_REASON_BYTES = 123


class ASGIProtocolError(Exception):
    """The ASGI app sent a message the ASGI websocket spec does not allow at that point."""


class _AppState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    RESPONDING = "sending a denial response"
    CLOSED = "closed"


class ASGIAppMessageValidator:
    """Tracks one app's ``send`` calls and rejects the ones the spec forbids.

    ``check(message)`` returns nothing for a valid message and raises
    :class:`ASGIProtocolError` naming what the app did wrong otherwise. ``denial_response``
    says whether the server offers the ``websocket.http.response`` extension.
    """

    def __init__(self, *, denial_response: bool = True) -> None:
        self._state = _AppState.CONNECTING
        self._denial_response = denial_response

    @property
    def accepted(self) -> bool:
        return self._state is _AppState.OPEN

    @property
    def finished(self) -> bool:
        """The app has closed, rejected, or sent the last body chunk of its denial response."""
        return self._state is _AppState.CLOSED

    def check(self, message: Mapping[str, Any]) -> None:
        message_type = message.get("type") if isinstance(message, Mapping) else None
        if not isinstance(message_type, str):
            raise ASGIProtocolError(
                f"the app sent {message!r}, which is not a dict with a string 'type'"
            )
        state = self._state
        if state is _AppState.CLOSED:
            raise ASGIProtocolError(
                f"the app sent {message_type!r} after the websocket was closed; "
                "nothing may be sent after 'websocket.close' or a finished denial response"
            )
        if message_type == "websocket.accept":
            self._check_accept(message)
        elif message_type == "websocket.send":
            self._check_send(message)
        elif message_type == "websocket.close":
            _check_close(message)
            self._state = _AppState.CLOSED
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

    def _check_accept(self, message: Mapping[str, Any]) -> None:
        if self._state is not _AppState.CONNECTING:
            raise ASGIProtocolError(
                f"the app sent 'websocket.accept' in state {self._state.value}; "
                "a connection can be accepted only once, before anything else is sent"
            )
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise ASGIProtocolError(
                f"'websocket.accept' has subprotocol {subprotocol!r}; it must be a str or None"
            )
        _check_headers("websocket.accept", message.get("headers"))
        self._state = _AppState.OPEN

    def _check_send(self, message: Mapping[str, Any]) -> None:
        if self._state is not _AppState.OPEN:
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
        if self._state is not _AppState.CONNECTING:
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
        self._state = _AppState.RESPONDING

    def _check_response_body(self, message: Mapping[str, Any]) -> None:
        if self._state is not _AppState.RESPONDING:
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
            self._state = _AppState.CLOSED


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
