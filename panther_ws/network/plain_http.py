"""Plain HTTP/1.1 on the reference server: one request to the app's ``http`` scope.

A server that speaks only WebSocket cannot serve the page that opens the websocket, an App's
``fallback`` routes or a health check. h11 parses the request and frames the response, so
this module only turns h11's events into ASGI messages and back. One request per connection
(``Connection: close``): the socket then counts against the same limits as a websocket, and
there are no idle keep-alive sockets to bound.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.abc
import h11

from panther_ws.protocol.asgi import ASGIProtocolError, ClientDisconnected
from panther_ws.protocol.responses import error_response

# Where h11 ends a request head: the blank line, with or without CR.
_END_OF_HEAD = re.compile(rb"\n\r?\n")
_STREAM_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)
LINGER_SECONDS = 1.0


def plain_request(
    received: bytes, max_request_size: int
) -> tuple[h11.Connection, h11.Request] | None:
    """The plain HTTP request in ``received``, if it is one, with the h11 connection read on.

    Called only for what the websocket handshake refused, so an upgrade request is parsed
    once. A request that asks for a websocket, an incomplete or malformed one, or a head
    over ``max_request_size`` is not a plain request: the handshake's answer stands.
    """
    head = _END_OF_HEAD.search(received)
    if head is None or head.end() > max_request_size:
        return None
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=max_request_size)
    parser.receive_data(received)
    try:
        request = parser.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(request, h11.Request) or _asks_for_websocket(request):
        return None
    return parser, request


def _asks_for_websocket(request: h11.Request) -> bool:
    return any(
        name == b"upgrade" and b"websocket" in value.lower() for name, value in request.headers
    )


class HTTPExchange:
    """One request and its response, between the socket and the app's ASGI calls.

    The body reaches the app as ``http.request`` messages as it arrives, each read waiting
    at most ``read_timeout``; past ``max_body_size`` bytes the server answers 413 itself and
    the app's ``receive()`` gets ``http.disconnect``. After the body, ``receive()`` waits
    until the response is complete, then returns ``http.disconnect``.
    """

    def __init__(
        self,
        parser: h11.Connection,
        request: h11.Request,
        stream: anyio.abc.ByteStream,
        *,
        max_body_size: int,
        read_timeout: float,
        read_size: int,
    ) -> None:
        self.request = request
        self._parser = parser
        self._stream = stream
        self._max_body_size = max_body_size
        self._read_timeout = read_timeout
        self._read_size = read_size
        self._body_received = 0
        self._body_done = False
        self.status_code: int | None = None  # the response's, once it started
        self.complete = anyio.Event()  # the response is written (or cannot be)

    @property
    def started(self) -> bool:
        return self.status_code is not None

    def scope(
        self,
        *,
        scheme: str,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        state: Mapping[str, Any],
    ) -> dict[str, Any]:
        request = self.request
        raw_path, _, query = request.target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": scheme,
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "root_path": "",
            "query_string": query,
            "headers": list(request.headers),  # h11 gives lowercase names
            "client": list(client) if client is not None else None,
            "server": list(server) if server is not None else None,
            "state": dict(state),
        }

    def declared_body_too_large(self) -> bool:
        lengths = [value for name, value in self.request.headers if name == b"content-length"]
        return bool(lengths) and int(lengths[0]) > self._max_body_size

    async def receive(self) -> dict[str, Any]:
        if self._body_done:
            await self.complete.wait()
            return {"type": "http.disconnect"}
        while True:
            try:
                event = self._parser.next_event()
            except h11.RemoteProtocolError:  # a broken body, or cut short
                event = h11.ConnectionClosed()
            if event is h11.NEED_DATA:
                await self._read()
            elif isinstance(event, h11.Data):
                self._body_received += len(event.data)
                if self._body_received > self._max_body_size:
                    self._body_done = True
                    if self.started:
                        self.complete.set()  # the response is cut short with the socket
                    else:
                        await self.refuse(413, b"Payload Too Large")
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            else:  # ConnectionClosed: the client left mid-body, or was too slow
                self._body_done = True
                self.complete.set()
                return {"type": "http.disconnect"}

    async def _read(self) -> None:
        data = b""
        with anyio.move_on_after(self._read_timeout):
            try:
                data = await self._stream.receive(self._read_size)
            except _STREAM_GONE:
                pass
        try:
            self._parser.receive_data(data)  # b"": the end of the stream, or too slow
        except h11.RemoteProtocolError:
            pass  # next_event() reports the broken body

    async def send(self, message: Mapping[str, Any]) -> None:
        message_type = message.get("type")
        if self.complete.is_set():
            raise ClientDisconnected(
                f"the app sent {message_type!r} after the response was complete"
            )
        if message_type == "http.response.start":
            if self.started:
                raise ASGIProtocolError("the app sent 'http.response.start' twice")
            status = message.get("status")
            if not isinstance(status, int):
                raise ASGIProtocolError(f"'http.response.start' has status {status!r}")
            headers = [*(message.get("headers") or ()), (b"connection", b"close")]
            await self._write(h11.Response(status_code=status, headers=headers))
            self.status_code = status
        elif message_type == "http.response.body":
            if not self.started:
                raise ASGIProtocolError("the app sent 'http.response.body' before its start")
            body = message.get("body", b"")
            if body and self.request.method != b"HEAD":  # h11 frames HEAD with no body
                await self._write(h11.Data(data=body))
            if not message.get("more_body", False):
                await self._write(h11.EndOfMessage())
                self.complete.set()
        else:
            raise ASGIProtocolError(
                f"an 'http' app may send 'http.response.start' and 'http.response.body', "
                f"not {message_type!r}"
            )

    async def _write(self, event: h11.Response | h11.Data | h11.EndOfMessage) -> None:
        try:
            data = self._parser.send(event)
        except h11.LocalProtocolError as exc:
            raise ASGIProtocolError(f"the app's response is not valid HTTP: {exc}") from exc
        try:
            await self._stream.send(data or b"")
        except _STREAM_GONE as exc:
            self.complete.set()
            raise ClientDisconnected("the client has disconnected") from exc

    async def finish(self) -> None:
        """Before the socket closes: if the client may still be sending its body, linger.

        Closing a socket with unread bytes makes the kernel answer with a reset, which can
        destroy the response before the client has read it (a 413 while the body streams,
        an app that answers without reading). So half-close and read what still comes,
        discarding it, for at most ``LINGER_SECONDS`` (RFC 9112 9.6).
        """
        if self._parser.their_state is h11.DONE:  # the whole request was read
            return
        with anyio.move_on_after(LINGER_SECONDS):
            try:
                with contextlib.suppress(NotImplementedError):  # TLS cannot half-close
                    await self._stream.send_eof()
                while True:
                    await self._stream.receive(self._read_size)
            except _STREAM_GONE:
                pass

    async def refuse(self, status_code: int, reason: bytes) -> None:
        """The server's own answer in place of the app's (nothing of it was written)."""
        self.status_code = status_code
        self.complete.set()
        try:
            await self._stream.send(error_response(status_code, reason))
        except _STREAM_GONE:
            pass
