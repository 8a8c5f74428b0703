"""The client end: queues the upgrade request at once, then reads the server's answer."""

from __future__ import annotations

from wsproto.events import AcceptConnection, RejectConnection, RejectData
from wsproto.events import Request as _WsprotoRequest
from wsproto.extensions import Extension
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import RemoteProtocolError, generate_nonce

from panther_ws.protocol._deflate import BoundedDeflate
from panther_ws.protocol._fast_handshake import parse_accept, request_bytes
from panther_ws.protocol._handshake import ClientHandshake
from panther_ws.protocol._headers import HeadersInput, normalize_headers
from panther_ws.protocol.connection import (
    CLOSED,
    CONNECTING,
    DEFAULT_MAX_MESSAGE_SIZE,
    Connection,
)
from panther_ws.protocol.events import Accepted, Headers, Rejected
from panther_ws.protocol.exceptions import ProtocolError


class ClientConnection(Connection):
    """One WebSocket connection as seen by a client.

    The upgrade request is in :meth:`data_to_send` as soon as the object exists. The server's
    answer becomes :class:`Accepted` (OPEN) or :class:`Rejected` (CLOSED, with the whole
    response body); a response that is not a valid upgrade (wrong ``Sec-WebSocket-Accept``,
    unknown subprotocol) raises :class:`ProtocolError`.
    """

    def __init__(
        self,
        host: str,
        path: str,
        *,
        headers: HeadersInput = (),
        subprotocols: tuple[str, ...] | list[str] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        permessage_deflate: bool = True,
    ) -> None:
        super().__init__(max_message_size=max_message_size)
        self.permessage_deflate = permessage_deflate
        # wsproto's handshake: made at once when the fast path declines the request, else
        # only if it declines the answer; dropped once the connection is open.
        self._handshake: ClientHandshake | None = None
        self._rejection: tuple[int, Headers] | None = None
        self._rejection_body = bytearray()
        request = _WsprotoRequest(
            host=host,
            target=path or "/",
            extra_headers=normalize_headers(headers, call="ClientConnection()"),
            subprotocols=list(subprotocols),
            extensions=self._extensions(),
        )
        self._nonce = generate_nonce()
        fast = request_bytes(request, self._nonce) if self._fast_handshake else None
        self._request: _WsprotoRequest | None = request if fast is not None else None
        self._outgoing.append(fast if fast is not None else self._prime(request, None))

    def _prime(self, request: _WsprotoRequest, nonce: bytes | None) -> bytes:
        """Send ``request`` through wsproto's handshake: the bytes it would send.

        ``nonce``: the key of the request we already sent ourselves, which the answer is
        checked against; ``None``: wsproto's handshake draws the key.
        """
        self._handshake = ClientHandshake()
        try:
            return self._handshake.send_request(request, nonce)
        except Exception as exc:  # h11 validates the target and header bytes
            raise ProtocolError(
                f"cannot build the upgrade request for {request.target!r}: {exc}"
            ) from exc

    def _extensions(self) -> list[Extension]:
        """Fresh extension objects for one handshake (negotiating changes them)."""
        return [BoundedDeflate(self.max_message_size)] if self.permessage_deflate else []

    def _accept_fast(self, data: bytes) -> bool:
        """Open on a simple 101 without h11, exactly as wsproto would have."""
        request = self._request
        assert request is not None
        accepted = parse_accept(data, self._nonce, request.subprotocols, self._extensions())
        if accepted is None:
            return False
        subprotocol, headers, negotiated, head_length = accepted
        self._request = None
        self._events.append(Accepted(subprotocol=subprotocol, headers=tuple(headers)))
        self._open(FrameProtocol(client=True, extensions=negotiated), data[head_length:])
        return True

    def _receive_handshake_data(self, data: bytes | None) -> None:
        if data is None and self._rejection is None:  # the server left without answering
            self._end(1006, "")
            return
        if self._handshake is None:  # we wrote the request: wsproto's handshake only if needed
            if not data:  # nor would wsproto's handshake do anything with it
                return
            if self._accept_fast(data):
                return
            assert self._request is not None
            self._prime(self._request, self._nonce)
            self._request = None
        handshake = self._handshake
        assert handshake is not None
        try:
            handshake.receive_data(data)
            events = list(handshake.events())
        except RemoteProtocolError as exc:
            self.state = CLOSED
            raise ProtocolError(f"invalid upgrade response: {exc}") from exc
        for event in events:
            if isinstance(event, AcceptConnection):
                self._events.append(
                    Accepted(subprotocol=event.subprotocol, headers=tuple(event.extra_headers))
                )
                connection = handshake.connection
                assert connection is not None
                self._handshake = None
                self._open(connection._proto)
            elif isinstance(event, RejectConnection):
                self._rejection = (event.status_code, tuple(event.headers))
                if not event.has_body:
                    self._finish_rejection()
            elif isinstance(event, RejectData):
                self._rejection_body += event.data
                if len(self._rejection_body) > self.max_message_size:
                    self.state = CLOSED
                    raise ProtocolError(
                        f"the rejection body exceeds max_message_size ({self.max_message_size})"
                    )
                if event.body_finished:
                    self._finish_rejection()
        if data is None and self.state is CONNECTING:
            self._end(1006, "")

    def _finish_rejection(self) -> None:
        assert self._rejection is not None
        status_code, headers = self._rejection
        self._events.append(Rejected(status_code, headers, bytes(self._rejection_body)))
        self.state = CLOSED
