"""The server end: parses the upgrade request, then lets the caller accept or reject it."""

from __future__ import annotations

import base64
import binascii
import re
from typing import NoReturn, cast

from wsproto.events import AcceptConnection, RejectConnection, RejectData
from wsproto.events import Request as _WsprotoRequest
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import RemoteProtocolError

from panther_ws.protocol._deflate import BoundedDeflate
from panther_ws.protocol._fast_handshake import Pairs, accept_response, parse_request
from panther_ws.protocol._handshake import ServerHandshake
from panther_ws.protocol._headers import HeadersInput, normalize_headers
from panther_ws.protocol.connection import (
    CLOSED,
    CONNECTING,
    DEFAULT_MAX_MESSAGE_SIZE,
    Connection,
)
from panther_ws.protocol.events import Headers, Request
from panther_ws.protocol.exceptions import ProtocolError

# Where h11 ends a request head (its own pattern): the blank line, with or without CR.
_END_OF_HEAD = re.compile(rb"\n\r?\n")

_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
    b"content-length: 11\r\nconnection: close\r\n\r\nBad Request"
)

_UPGRADE_REQUIRED = (
    b"HTTP/1.1 426 Upgrade Required\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-version: 13\r\ncontent-type: text/plain\r\ncontent-length: 34\r\n\r\n"
    b"This endpoint speaks WebSocket only"
)
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


class ServerConnection(Connection):
    """One WebSocket connection as seen by a server.

    Feed it the bytes of the client's upgrade request; a :class:`Request` event appears once
    the request is complete and valid, then call :meth:`accept` or :meth:`reject`. An invalid
    request raises :class:`ProtocolError` with an HTTP 400 already queued in
    :meth:`data_to_send` (426 for a plain HTTP request or a wrong ``Sec-WebSocket-Version``,
    431 for a head over ``max_request_size``, 505 for HTTP/1.0).
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        permessage_deflate: bool = True,
        max_request_size: int = 16 * 1024,
    ) -> None:
        super().__init__(max_message_size=max_message_size)
        self.permessage_deflate = permessage_deflate
        # h11 bounds only an *incomplete* head; a huge head in one read needs our own cap.
        self.max_request_size = max_request_size
        self._head_bytes = 0
        self._head_tail = b""  # the last bytes read, where a blank line may have begun
        # wsproto's handshake, made when the fast path declines (or for reject()); dropped
        # once the connection is open.
        self._handshake: ServerHandshake | None = None
        self._request: _WsprotoRequest | None = None
        # What a fast-parsed request arrived with (its head, then any pipelined frames), to
        # open the frame connection with, or to replay into wsproto's handshake.
        self._received: bytearray | None = None
        self._head_length = 0

    def accept(self, subprotocol: str | None = None, headers: HeadersInput = ()) -> None:
        """Answer the upgrade with 101; the connection is OPEN.

        ``headers`` are added to the response: (name, value) pairs of str or bytes, or a
        mapping. An offer of permessage-deflate with parameters we cannot honour (or cannot
        parse) is declined: the connection opens without compression, as RFC 7692 asks.
        """
        request = self._require_request("accept()")
        extra_headers = normalize_headers(headers, call="accept()")
        if subprotocol is not None and subprotocol not in request.subprotocols:
            raise ProtocolError(
                f"accept() got subprotocol {subprotocol!r}, which the client did not offer "
                f"(it offered {list(request.subprotocols)!r})"
            )
        if self._received is not None:
            if self._accept_fast(request, subprotocol, extra_headers):
                return
            self._handshake = self._replay()
        assert self._handshake is not None
        extensions = self._extensions(request)
        try:
            response = self._handshake.send(
                AcceptConnection(
                    subprotocol=subprotocol, extra_headers=extra_headers, extensions=extensions
                )
            )
        except Exception as exc:  # h11 refuses malformed headers with its own errors
            raise ProtocolError(f"accept() could not build the response: {exc}") from exc
        self._outgoing.append(response)
        connection = self._handshake.connection
        assert connection is not None
        # wsproto does not hand the bytes that followed the request to the new frame
        # connection on the server side; a client may pipeline frames right after it.
        trailing, _ = self._handshake._h11_connection.trailing_data
        self._handshake = self._request = None
        self._open(connection._proto, bytes(trailing))

    def _accept_fast(
        self, request: _WsprotoRequest, subprotocol: str | None, extra_headers: Pairs
    ) -> bool:
        """accept() without h11, when the answer is one we can prove equal to wsproto's."""
        assert self._received is not None
        extensions = self._extensions(request)
        try:
            accepts = (
                server_extensions_handshake(cast("list[str]", request.extensions), extensions)
                if extensions
                else None
            )
        except Exception:  # wsproto's path reports it, in its words
            return False
        key = dict(request.extra_headers)[b"sec-websocket-key"]
        response = accept_response(key, subprotocol, accepts, extra_headers)
        if response is None:
            return False
        self._outgoing.append(response)
        trailing = bytes(self._received[self._head_length :])
        self._received = self._request = None
        self._open(FrameProtocol(client=False, extensions=extensions), trailing)
        return True

    def _extensions(self, request: _WsprotoRequest) -> list[Extension]:
        """Fresh extension objects for one answer (negotiating changes them)."""
        offered_deflate = any(
            offer.split(";")[0].strip() == PerMessageDeflate.name
            for offer in request.extensions
            if isinstance(offer, str)
        )
        if self.permessage_deflate and offered_deflate:
            return [BoundedDeflate(self.max_message_size)]
        return []

    def _replay(self) -> ServerHandshake:
        """wsproto's handshake, fed what the fast path parsed: it finds the same request."""
        assert self._received is not None
        handshake = ServerHandshake(self.max_request_size)
        handshake.receive_data(bytes(self._received))
        for _ in handshake.events():  # the Request we already reported
            pass
        self._received = None
        return handshake

    def reject(self, status_code: int = 403, headers: HeadersInput = (), body: bytes = b"") -> None:
        """Answer the upgrade with a plain HTTP response; the connection is CLOSED.

        ``headers`` take the same forms as in :meth:`accept`.
        """
        self._require_request("reject()")
        if not 100 <= status_code <= 599 or status_code == 101:
            raise ProtocolError(f"reject() got status code {status_code}; use 100-599 except 101")
        response_headers = normalize_headers(headers, call="reject()")
        if body and not any(name.lower() == b"content-length" for name, _ in response_headers):
            response_headers.append((b"content-length", str(len(body)).encode()))
        if self._handshake is None:
            self._handshake = self._replay()
        try:
            self._outgoing.append(
                self._handshake.send(
                    RejectConnection(
                        status_code=status_code, headers=response_headers, has_body=bool(body)
                    )
                )
            )
            if body:
                self._outgoing.append(
                    self._handshake.send(RejectData(data=bytes(body), body_finished=True))
                )
        except Exception as exc:  # h11 refuses malformed headers with its own errors
            raise ProtocolError(f"reject() could not build the response: {exc}") from exc
        self.state = CLOSED

    def _require_request(self, call: str) -> _WsprotoRequest:
        if self.state is not CONNECTING or self._request is None:
            waiting = " (no Request event yet)" if self.state is CONNECTING else ""
            raise ProtocolError(f"{call} cannot be called in state {self.state.value}{waiting}")
        return self._request

    def _receive_handshake_data(self, data: bytes | None) -> None:
        if data is None:  # the client left before we answered
            self._end(1006, "")
            return
        if self._request is not None:
            # Bytes after the request are frames the client sent before our answer: kept
            # for accept(), by h11 as trailing data or by us.
            if self._received is not None:
                self._received += data
            else:
                assert self._handshake is not None
                self._handshake.receive_data(data)
            return
        self._head_bytes += self._head_part_of(data)
        if self._head_bytes > self.max_request_size:
            self._outgoing.append(_TOO_LARGE)
            self.state = CLOSED
            raise ProtocolError(
                f"invalid upgrade request: its head exceeds max_request_size "
                f"({self.max_request_size} bytes)"
            )
        if self._handshake is None:  # the first read: the fast path may take it whole
            parsed = parse_request(data) if self._fast_handshake else None
            if parsed is not None:
                request, self._head_length = parsed
                self._received = bytearray(data)
                self._on_request(request)
                return
            self._handshake = ServerHandshake(self.max_request_size)
        try:
            self._handshake.receive_data(data)
            events = list(self._handshake.events())
        except RemoteProtocolError as exc:
            self._refuse(exc, str(exc))
        except Exception as exc:  # e.g. a Host header that is not valid IDNA
            self._refuse(None, f"bad upgrade request: {exc}")
        for event in events:
            if isinstance(event, _WsprotoRequest):
                self._on_request(event)

    def _head_part_of(self, data: bytes) -> int:
        """How many bytes of ``data`` belong to the request head, up to its blank line.

        Frames a client pipelines after the head, in the same read, are not part of it: they
        wait in h11's buffer for accept().
        """
        tail = self._head_tail
        # A blank line may span two reads: look at our tail and this read's first bytes.
        match = _END_OF_HEAD.search(tail + data[:2])
        if match is not None:
            return match.end() - len(tail)
        match = _END_OF_HEAD.search(data)
        if match is not None:
            return match.end()
        self._head_tail = (tail + data[-2:])[-2:]
        return len(data)

    def _on_request(self, request: _WsprotoRequest) -> None:
        headers = dict(request.extra_headers)
        key = headers.get(b"sec-websocket-key", b"")
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            self._refuse(None, f"Sec-WebSocket-Key {key[:40]!r} is not 16 bytes in base64")
        self._request = request
        target = request.target
        path, _, query = target.partition("?")
        all_headers: Headers = ((b"host", request.host.encode("utf-8")),)
        all_headers += tuple(request.extra_headers)
        if request.subprotocols:
            all_headers += ((b"sec-websocket-protocol", ", ".join(request.subprotocols).encode()),)
        if request.extensions:
            offers = ", ".join(str(offer) for offer in request.extensions)
            all_headers += ((b"sec-websocket-extensions", offers.encode()),)
        self._events.append(
            Request(
                path=path,
                query_string=query.encode("latin-1"),
                headers=all_headers,
                subprotocols=tuple(request.subprotocols),
            )
        )

    def _refuse(self, exc: RemoteProtocolError | None, message: str) -> NoReturn:
        hint = exc.event_hint if exc is not None else None
        response = _BAD_REQUEST
        if "'Connection: Upgrade'" in message or "'Upgrade: websocket'" in message:
            # A plain HTTP request: tell the client what this endpoint expects (RFC 7231 6.5.15).
            response = _UPGRADE_REQUIRED
        elif isinstance(hint, RejectConnection) and self._handshake is not None:
            try:
                response = self._handshake.send(hint)
            except Exception:  # h11 may already be in its error state
                response = _BAD_REQUEST
        self._outgoing.append(response)
        self.state = CLOSED
        raise ProtocolError(f"invalid upgrade request: {message}") from exc
