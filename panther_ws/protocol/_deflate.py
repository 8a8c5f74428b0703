"""permessage-deflate (RFC 7692) that cannot be turned into a memory bomb.

wsproto's extension inflates each frame payload whole, and the size limit can only look at
the result: one ~1 MB frame of zeros inflates to 1 GiB (3 GB of RSS and 10 s of CPU) before
the 1009. :class:`BoundedDeflate` inflates with zlib's ``max_length`` set to what the current
message may still take, so it stops, and fails the connection with 1009, as soon as a message
would pass ``max_message_size``: inflating costs about the limit (twice, for a moment, while
zlib joins its output) plus the read being inflated. The handshake parameters go through the
same class, so it also declines a malformed offer (server) and refuses a malformed answer
(client) with wsproto's own error, which the connections turn into :class:`ProtocolError`.

One instance per connection, given to wsproto's handshake in place of its own class;
wsproto's module is untouched.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
)
from wsproto.utilities import RemoteProtocolError

# RFC 7692 7.2.2: the sender strips this empty stored block from every message; put it back.
_MESSAGE_TAIL = b"\x00\x00\xff\xff"
_FLAGS = ("client_no_context_takeover", "server_no_context_takeover")
_WINDOW_BITS = ("client_max_window_bits", "server_max_window_bits")
_SETTINGS = (*_FLAGS, "_client_max_window_bits", "_server_max_window_bits")


class BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, inflating no further than ``max_message_size``."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self.max_message_size = max_message_size
        self._inflated = 0  # bytes of the current message inflated so far

    # -- the handshake --------------------------------------------------------------------

    def accept(self, offer: str) -> bool | str | None:
        """Server: answer the first offer we can honour; decline malformed ones (RFC 7692 5)."""
        if self._enabled:  # a client may list fallbacks; one is accepted, the first
            return None
        settings = {name: getattr(self, name) for name in _SETTINGS}
        try:
            answer = super().accept(offer)
        except ValueError:  # a window size that is not a number: wsproto's parser raises
            answer = None
        if answer is None:  # a declined offer must not leave its parameters behind
            for name, value in settings.items():
                setattr(self, name, value)
        return answer

    def finalize(self, offer: str) -> None:
        """Client: take the server's answer, refusing one wsproto would crash or guess on."""
        if self._enabled:  # wsproto would install the extension twice, inflating twice
            raise RemoteProtocolError(
                f"Sec-WebSocket-Extensions accepts {self.name} twice (again as {offer!r})"
            )
        seen: set[str] = set()
        for parameter in offer.split(";")[1:]:
            name, has_value, value = (part.strip() for part in parameter.partition("="))
            problem = None
            if name in seen:
                problem = "is repeated"
            elif name in _FLAGS:
                problem = "takes no value" if has_value else None
            elif name not in _WINDOW_BITS:
                problem = "is not a permessage-deflate parameter"
            elif not value.isdigit() or not 9 <= int(value) <= 15:
                problem = f"needs a value from 9 to 15, got {value!r}"
            if problem is not None:
                raise RemoteProtocolError(
                    f"Sec-WebSocket-Extensions {offer!r}: parameter {name!r} {problem}"
                )
            seen.add(name)
        super().finalize(offer)

    # -- inbound frames -------------------------------------------------------------------

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        # wsproto lets a control frame reset the state of the message around it, so a ping
        # between two compressed fragments made the rest of the message arrive still
        # compressed. A control frame is never compressed and leaves the message alone.
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin or not self._inbound_is_compressible:
            return None
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        inflated = self._inflate(_MESSAGE_TAIL)
        no_context_takeover = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if no_context_takeover:  # the peer starts every message with a fresh window
            self._decompressor = None
        self._inbound_compressed = None
        self._inflated = 0
        return inflated

    def _inflate(self, data: bytes) -> bytes:
        assert self._decompressor is not None
        room = self.max_message_size - self._inflated
        try:
            # One byte more than the room: getting it means the message is too big. Fewer
            # means zlib ran out of input, so nothing is left in its unconsumed tail.
            inflated = self._decompressor.decompress(data, room + 1)
        except zlib.error as exc:
            raise ParseFailed(
                f"invalid compressed data: {exc}", CloseReason.INVALID_FRAME_PAYLOAD_DATA
            ) from exc
        if len(inflated) > room:
            self._decompressor = None  # drop its unconsumed input now
            raise ParseFailed(
                f"compressed message exceeds the limit of {self.max_message_size} bytes "
                "once inflated",
                CloseReason.MESSAGE_TOO_BIG,
            )
        self._inflated += len(inflated)
        return inflated
