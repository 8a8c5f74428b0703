"""The client end: queues the upgrade request at once, then reads the server's answer."""

from __future__ import annotations

from wsproto.events import AcceptConnection, RejectConnection, RejectData
from wsproto.events import Request as _WsprotoRequest
from wsproto.extensions import Extension
from wsproto.utilities import RemoteProtocolError

from panther_ws.protocol._deflate import BoundedDeflate
from panther_ws.protocol._handshake import ClientHandshake
from panther_ws.protocol._headers import HeadersInput, normalize_headers
from panther_ws.protocol.connection import DEFAULT_MAX_MESSAGE_SIZE, Connection, ConnectionState
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
        self._handshake = ClientHandshake()
        self._rejection: tuple[int, Headers] | None = None
        self._rejection_body = bytearray()
        extensions: list[Extension] = (
            [BoundedDeflate(max_message_size)] if permessage_deflate else []
        )
        extra_headers = normalize_headers(headers, call="ClientConnection()")
        try:
            self._outgoing.append(
                self._handshake.send(
                    _WsprotoRequest(
                        host=host,
                        target=path or "/",
                        extra_headers=extra_headers,
                        subprotocols=list(subprotocols),
                        extensions=extensions,
                    )
                )
            )
        except Exception as exc:  # h11 validates the target and header bytes
            raise ProtocolError(f"cannot build the upgrade request for {path!r}: {exc}") from exc

    def _receive_handshake_data(self, data: bytes | None) -> None:
        if data is None and self._rejection is None:  # the server left without answering
            self._end(1006, "")
            return
        try:
            self._handshake.receive_data(data)
            events = list(self._handshake.events())
        except RemoteProtocolError as exc:
            self.state = ConnectionState.CLOSED
            raise ProtocolError(f"invalid upgrade response: {exc}") from exc
        for event in events:
            if isinstance(event, AcceptConnection):
                self._events.append(
                    Accepted(subprotocol=event.subprotocol, headers=tuple(event.extra_headers))
                )
                frames = self._handshake.connection
                assert frames is not None
                self._open(frames)
            elif isinstance(event, RejectConnection):
                self._rejection = (event.status_code, tuple(event.headers))
                if not event.has_body:
                    self._finish_rejection()
            elif isinstance(event, RejectData):
                self._rejection_body += event.data
                if len(self._rejection_body) > self.max_message_size:
                    self.state = ConnectionState.CLOSED
                    raise ProtocolError(
                        f"the rejection body exceeds max_message_size ({self.max_message_size})"
                    )
                if event.body_finished:
                    self._finish_rejection()
        if data is None and self.state is ConnectionState.CONNECTING:
            self._end(1006, "")

    def _finish_rejection(self) -> None:
        assert self._rejection is not None
        status_code, headers = self._rejection
        self._events.append(Rejected(status_code, headers, bytes(self._rejection_body)))
        self.state = ConnectionState.CLOSED
