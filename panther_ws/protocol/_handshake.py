"""wsproto's HTTP/1.1 handshake, refusing what it would crash on or wrongly accept.

wsproto decodes some handshake headers as ASCII without checking (so ``\\xff`` in one raises
``UnicodeDecodeError`` from deep inside it) and answers an HTTP/1.0 upgrade request with
101, though RFC 6455 4.1 needs HTTP/1.1. These subclasses check the parsed head first and
raise wsproto's own ``RemoteProtocolError``, naming the header, which the connections turn
into :class:`ProtocolError` (with a 400 or 505 queued on the server side). One instance per
connection; wsproto's module is untouched.
"""

from __future__ import annotations

import h11
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection
from wsproto.events import Request as _WsprotoRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

# The headers wsproto decodes as ASCII (its split_comma_header, or .decode("ascii")).
_ASCII_HEADERS = {
    b"connection": "Connection",
    b"sec-websocket-extensions": "Sec-WebSocket-Extensions",
    b"sec-websocket-protocol": "Sec-WebSocket-Protocol",
}
_HTTP_VERSION_NOT_SUPPORTED = 505


def _check_ascii(headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        display_name = _ASCII_HEADERS.get(name.lower())
        if display_name is not None and not value.isascii():
            raise RemoteProtocolError(
                f"header {display_name} {value[:60]!r} is not ASCII",
                event_hint=RejectConnection(),
            )


class ServerHandshake(H11Handshake):
    """The server's side: an upgrade request head of at most ``max_request_size`` bytes."""

    def __init__(self, max_request_size: int) -> None:
        super().__init__(ConnectionType.SERVER)
        # h11's own bound on an incomplete head follows ours, so raising ours works.
        self._h11_connection = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max_request_size
        )

    def _process_connection_request(self, event: h11.Request) -> _WsprotoRequest:
        if event.http_version != b"1.1":
            raise RemoteProtocolError(
                f"HTTP/{event.http_version.decode('ascii')} cannot upgrade to WebSocket; "
                "RFC 6455 needs HTTP/1.1",
                event_hint=RejectConnection(status_code=_HTTP_VERSION_NOT_SUPPORTED),
            )
        _check_ascii(list(event.headers))
        if not event.target.isascii():
            raise RemoteProtocolError(
                f"request target {event.target[:60]!r} is not ASCII", event_hint=RejectConnection()
            )
        try:
            return super()._process_connection_request(event)
        except UnicodeError as exc:  # what is left to decode is Host, as IDNA
            raise RemoteProtocolError(
                f"header Host is not a valid host name: {exc}", event_hint=RejectConnection()
            ) from exc


class ClientHandshake(H11Handshake):
    """The client's side: a 101 whose headers wsproto can read."""

    def __init__(self) -> None:
        super().__init__(ConnectionType.CLIENT)

    def send_request(self, request: _WsprotoRequest, nonce: bytes | None) -> bytes:
        """Send ``request``; with ``nonce``, as the request the caller wrote with that key.

        The fast path writes a simple request itself, and comes here only if the answer is
        not a simple 101: the answer is then checked against the key that went out.
        """
        data = self.send(request)
        if nonce is not None:
            self._nonce = nonce
        return data

    def _establish_client_connection(self, event: h11.InformationalResponse) -> AcceptConnection:
        _check_ascii(list(event.headers))
        return super()._establish_client_connection(event)
