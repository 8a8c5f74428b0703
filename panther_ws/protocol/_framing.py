"""Our connections' wsproto frame objects: masking and serializing made cheaper, all close codes.

RFC 6455 makes a client XOR every frame it sends with a fresh 4-byte key, and the server undo
it. wsproto does this in pure Python, four strided ``bytes.translate`` passes: about 50 us for
a 64 KiB message on each side, more than the rest of handling that message. The
``websockets`` package ships the same operation in C (``websockets.speedups.apply_mask``,
about 1 us for 64 KiB); with it installed (``pip install panther-ws[speedups]``) our
connections mask and unmask with it, otherwise with wsproto's own masker.

wsproto's serializer also copies the payload three times and builds an RSV tuple per frame,
though a frame is a 2-to-10-byte header and the payload (compressed first by
permessage-deflate, if negotiated; masked by a client): writing that header here saves ~1 us
per small frame and ~3 us per 64 KiB.

wsproto's close-frame check also predates code 1014 (registered after RFC 6455): it fails a
peer's 1014 as "unknown reserved code". Every code an endpoint may send arrives as sent.

wsproto has no hook for any of this, and patching its module would change every other
wsproto user in the process. So :func:`accelerate` changes the class of *our* connection's
frame objects to subclasses that override a method or two, keeping their state.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

from wsproto.frame_protocol import (
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
    XorMaskerSimple,
)

from panther_ws.protocol.close_codes import is_sendable_close_code

_FIN_BIT = 0x80
MASK_BIT = 0x80
MAX_7_BIT_LENGTH = 125
MAX_16_BIT_LENGTH = 0xFFFF
# The 7-bit length values that announce a 16-bit and a 64-bit length.
LENGTH_16 = 126
LENGTH_64 = 127
_NO_RSV = RsvBits(False, False, False)
_HEADER_7 = struct.Struct("!BB")
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
# The first byte of a whole text or binary frame without RSV bits: the common case.
FIN_TEXT = int(_FIN_BIT | Opcode.TEXT)
FIN_BINARY = int(_FIN_BIT | Opcode.BINARY)


ApplyMask = Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]


def _c_apply_mask() -> ApplyMask | None:
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        return None
    return apply_mask


# None: mask with wsproto's Python masker (tests set it to None to run that path).
apply_mask = _c_apply_mask()


def accelerate(frames: FrameProtocol) -> None:
    """Switch ``frames``, fresh from wsproto's handshake, to the faster paths."""
    frames.__class__ = _FrameProtocol
    if apply_mask is not None and not frames.client:
        frames._frame_decoder.__class__ = _UnmaskingDecoder


class _CMasker:
    """wsproto's masker interface, with the XOR in C.

    A payload may arrive over several reads: the key rotates so the next part continues where
    this one stopped, as wsproto's masker does.
    """

    __slots__ = ("_apply_mask", "_key")

    def __init__(self, key: bytes | bytearray, c_apply_mask: ApplyMask) -> None:
        self._key = bytes(key)
        self._apply_mask = c_apply_mask

    def process(self, data: bytes | bytearray) -> bytes:
        key = self._key
        masked = self._apply_mask(data, key)
        shift = len(data) % 4
        if shift:
            self._key = key[shift:] + key[:shift]
        return masked


class _UnmaskingDecoder(FrameDecoder):
    def parse_header(self) -> bool:
        if not super().parse_header():
            return False
        masker: Any = self.masker
        if type(masker) is XorMaskerSimple and apply_mask is not None:
            self.masker = _CMasker(masker._masking_key, apply_mask)  # type: ignore[assignment]
        return True


class _FrameProtocol(FrameProtocol):
    def _process_close(self, frame: Frame) -> Frame:
        payload = frame.payload
        assert isinstance(payload, bytes | bytearray)
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        if code is None or not is_sendable_close_code(code):
            return super()._process_close(frame)  # wsproto's errors name what is wrong
        try:
            reason = bytes(payload[2:]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseFailed(
                f"Error decoding CLOSE reason: {exc}", CloseReason.INVALID_FRAME_PAYLOAD_DATA
            ) from exc
        return frame._replace(payload=(code, reason))

    # Returns bytes, not the bytearray wsproto declares: fewer copies, and the one caller,
    # our Connection, only joins frames.
    def _serialize_frame(
        self, opcode: Opcode, payload: bytes | bytearray = b"", fin: bool = True
    ) -> bytearray:
        first = (_FIN_BIT if fin else 0) | opcode
        if self.extensions:  # permessage-deflate compresses here and sets RSV1
            rsv = _NO_RSV
            for extension in reversed(self.extensions):
                rsv, payload = extension.frame_outbound(self, opcode, rsv, bytes(payload), fin)
            first |= rsv.rsv1 << 6 | rsv.rsv2 << 5 | rsv.rsv3 << 4
        return frame_bytes(first, payload, self.client)  # type: ignore[return-value]


def frame_bytes(first: int, payload: bytes | bytearray, client: bool) -> bytes:
    """One frame on the wire: ``first`` is its FIN/RSV/opcode byte; a client masks it."""
    length = len(payload)
    mask_bit = MASK_BIT if client else 0
    # Control frames always take the first branch: Connection bounds their payloads.
    if length <= MAX_7_BIT_LENGTH:
        header = _HEADER_7.pack(first, mask_bit | length)
    elif length <= MAX_16_BIT_LENGTH:
        header = _HEADER_16.pack(first, mask_bit | LENGTH_16, length)
    else:
        header = _HEADER_64.pack(first, mask_bit | LENGTH_64, length)
    if not client:
        return header + payload
    # A fresh key from a strong source for every frame (RFC 6455 5.3), as wsproto does.
    key = os.urandom(4)
    masked = (
        XorMaskerSimple(key).process(bytearray(payload))
        if apply_mask is None
        else apply_mask(payload, key)
    )
    return header + key + masked
