"""Whole small data frames parsed without wsproto's per-frame Python, for the common case.

wsproto's parser spends about 6 us on a 32-byte frame (two-thirds of handling it): a header
tuple, an RSV tuple, a masker object, three buffer slices, an extension pass, a message
decoder and a frame tuple per frame. Most frames a server reads are the simplest kind: one
whole unfragmented text or binary frame, already in the buffer, no reserved bits, masked as
the side requires, under the size limit, valid UTF-8 if text. :func:`take_messages` turns a
run of those at the start of wsproto's own buffer straight into :class:`Message` events and
stops at the first frame that is anything else (incomplete, fragmented, a control frame,
reserved bits, a bad length, invalid UTF-8, too big, any doubt), which stays in the buffer
for wsproto to parse, accept or fail exactly as it would have. It only starts between
messages, when wsproto holds no partial frame and no partial message, and only on a
connection with no extension negotiated, so wsproto's state is the same afterwards as if it
had parsed those frames itself.
"""

from __future__ import annotations

from wsproto.frame_protocol import FrameProtocol, XorMaskerSimple

from panther_ws.protocol import _framing
from panther_ws.protocol._framing import (
    FIN_BINARY,
    FIN_TEXT,
    LENGTH_16,
    LENGTH_64,
    MASK_BIT,
    MAX_7_BIT_LENGTH,
    MAX_16_BIT_LENGTH,
    ApplyMask,
)
from panther_ws.protocol.events import Event, Message

# Above this, a payload is unmasked from a view of the buffer rather than from a copy of it.
_IN_PLACE_ABOVE = 4096
# Stop a run after this many bytes, so a large read is not held twice (buffer and messages).
_RUN_BYTES = 64 * 1024


def take_messages(frames: FrameProtocol, events: list[Event], max_message_size: int) -> bool:
    """Parse the simple whole data frames at the start of ``frames``' buffer into ``events``.

    Returns whether any was taken; the bytes of those frames are gone from the buffer.
    """
    decoder = frames._frame_decoder
    if decoder.header is not None or frames._message_decoder.opcode is not None:
        return False  # wsproto is inside a frame or a fragmented message: its turn
    buffer = decoder.buffer.buffer
    size = len(buffer)
    unmask = _framing.apply_mask
    mask_bit = 0 if frames.client else MASK_BIT
    position = 0
    while size - position >= 2 and position < _RUN_BYTES:
        first = buffer[position]
        if first != FIN_BINARY and first != FIN_TEXT:
            break
        second = buffer[position + 1]
        if second & MASK_BIT != mask_bit:
            break
        length = second & 0x7F
        start = position + 2
        if length == LENGTH_16:
            if size < start + 2:
                break
            length = buffer[start] << 8 | buffer[start + 1]
            if length <= MAX_7_BIT_LENGTH:  # not the shortest encoding: wsproto names it
                break
            start += 2
        elif length == LENGTH_64:
            if size < start + 8:
                break
            length = int.from_bytes(buffer[start : start + 8], "big")
            # Not the shortest encoding. (A length with its top bit set, which wsproto also
            # refuses, can never be all in the buffer.)
            if length <= MAX_16_BIT_LENGTH:
                break
            start += 8
        if length > max_message_size:  # wsproto fails it with 1009 as it arrives
            break
        key = None
        if mask_bit:
            key = buffer[start : start + 4]
            start += 4
        end = start + length
        if size < end:
            break
        if length > _IN_PLACE_ABOVE:  # no copy of a large frame before unmasking it
            with memoryview(buffer) as view:
                payload = _unmasked(view[start:end], key, unmask)
        else:
            payload = _unmasked(buffer[start:end], key, unmask)
        if first == FIN_TEXT:
            try:
                events.append(Message(payload.decode("utf-8")))
            except UnicodeDecodeError:  # wsproto fails it with 1007, in its words
                break
        else:
            events.append(Message(payload))
        position = end
    if not position:
        return False
    del buffer[:position]
    return True


def _unmasked(
    data: bytearray | memoryview, key: bytearray | None, unmask: ApplyMask | None
) -> bytes:
    if key is None:
        return bytes(data)
    if unmask is not None:
        return unmask(data, key)
    return bytes(XorMaskerSimple(key).process(data))  # type: ignore[arg-type]
