"""Hypothesis strategies for fuzzing websocket handlers and servers.

Small composable functions with keyword bounds. For example::

    @given(message=strategies.messages())
    async def test_echo(message):
        async with client.connect("/ws/echo/") as ws:
            await ws.send(message)
            assert await ws.receive() == message
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

from panther_ws.protocol.close_codes import is_sendable_close_code

_OPCODE_CONTINUATION, _OPCODE_TEXT, _OPCODE_BINARY = 0x0, 0x1, 0x2
_OPCODE_CLOSE, _OPCODE_PING, _OPCODE_PONG = 0x8, 0x9, 0xA

DEFECTS = (
    "reserved bits",
    "unknown opcode",
    "unmasked",
    "oversized control frame",
    "fragmented control frame",
    "invalid utf-8",
    "continuation without start",
)


def text_messages(*, min_size: int = 0, max_size: int = 1000) -> st.SearchStrategy[str]:
    """Any text message, e.g. ``'héllo 👋'``; surrogates excluded as they have no UTF-8."""
    return st.text(
        alphabet=st.characters(exclude_categories=["Cs"]), min_size=min_size, max_size=max_size
    )


def binary_messages(*, min_size: int = 0, max_size: int = 1000) -> st.SearchStrategy[bytes]:
    """Any binary message, e.g. ``b'\\x00\\xff'``."""
    return st.binary(min_size=min_size, max_size=max_size)


def messages(*, max_size: int = 1000) -> st.SearchStrategy[str | bytes]:
    """A text or a binary message."""
    return st.one_of(text_messages(max_size=max_size), binary_messages(max_size=max_size))


def json_messages(*, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """A JSON-able value for ``send_json()``, e.g. ``{'a': [1, None, 'x']}`` or ``''``.

    ``send_json()`` serializes every value, a ``str`` too; ``send()`` sends a ``str`` as
    plain text, so ``''`` through ``send()`` would not arrive as JSON.
    """
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53), max_value=2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        text_messages(max_size=50),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(text_messages(max_size=20), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


def close_codes() -> st.SearchStrategy[int]:
    """A code an endpoint may send in a close frame, e.g. ``1000`` or ``4001``."""
    return st.integers(min_value=1000, max_value=4999).filter(is_sendable_close_code)


def invalid_close_codes() -> st.SearchStrategy[int]:
    """A code an endpoint must never send, e.g. ``1005`` or ``2999``."""
    return st.one_of(
        st.sampled_from([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]),
        st.integers(min_value=0, max_value=65535).filter(lambda c: not is_sendable_close_code(c)),
    )


def close_reasons(*, max_bytes: int = 123) -> st.SearchStrategy[str]:
    """A close reason of at most ``max_bytes`` UTF-8 bytes (a close frame holds 123)."""
    return text_messages(max_size=max_bytes).filter(lambda r: len(r.encode()) <= max_bytes)


def headers(*, max_count: int = 5) -> st.SearchStrategy[dict[str, str]]:
    """Extra request headers with valid token names and visible-ASCII values."""
    name = st.from_regex(r"\AX-[A-Za-z0-9]{1,12}\Z")
    value = st.from_regex(r"\A[!-~]{0,40}\Z")
    return st.dictionaries(name, value, max_size=max_count)


def query_params(*, max_count: int = 5) -> st.SearchStrategy[dict[str, str]]:
    """Query parameters, e.g. ``{'page': '2', 'q': 'é &'}`` (the client URL-encodes them)."""
    return st.dictionaries(
        text_messages(min_size=1, max_size=10), text_messages(max_size=20), max_size=max_count
    )


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None, rsv: int = 0
) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is None:
        return header + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


@st.composite
def frames(
    draw: st.DrawFn, *, invalid: bool = False, max_message_size: int = 300, max_fragments: int = 4
) -> bytes:
    """Raw client frames of one message: masked, maybe fragmented, with pings interleaved.

    With ``invalid=True`` one defect from :data:`DEFECTS` is introduced, so the bytes must
    make a server fail the connection (1002, or 1007 for invalid UTF-8): a server without
    permessage-deflate, as with it an RSV1 bit is no defect.
    """
    defect = draw(st.sampled_from(DEFECTS)) if invalid else None
    message = draw(messages(max_size=max_message_size))
    payload = message.encode() if isinstance(message, str) else message
    opcode = _OPCODE_TEXT if isinstance(message, str) else _OPCODE_BINARY
    if defect == "invalid utf-8":
        opcode, payload = _OPCODE_TEXT, payload + b"\xff\xfe"
    count = draw(st.integers(min_value=1, max_value=max(1, min(max_fragments, len(payload)))))
    step = -(-len(payload) // count) if payload else 0
    chunks = [payload[i : i + step] for i in range(0, len(payload), step)] if step else [b""]
    out = bytearray()

    def key() -> bytes:
        return draw(st.binary(min_size=4, max_size=4))

    for index, chunk in enumerate(chunks):
        first, last = index == 0, index == len(chunks) - 1
        this_opcode = opcode if first else _OPCODE_CONTINUATION
        if defect == "continuation without start" and first:
            this_opcode = _OPCODE_CONTINUATION
        out += encode_frame(this_opcode, chunk, fin=last, mask=key())
        if not last and draw(st.booleans()):
            out += encode_frame(_OPCODE_PING, draw(st.binary(max_size=125)), mask=key())
    if defect == "reserved bits":
        out += encode_frame(_OPCODE_BINARY, b"x", mask=key(), rsv=draw(st.sampled_from([1, 2, 4])))
    elif defect == "unknown opcode":
        out += encode_frame(
            draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])), b"", mask=key()
        )
    elif defect == "unmasked":
        out += encode_frame(_OPCODE_BINARY, b"unmasked", mask=None)
    elif defect == "oversized control frame":
        out += encode_frame(_OPCODE_PING, b"p" * draw(st.integers(126, 300)), mask=key())
    elif defect == "fragmented control frame":
        out += encode_frame(_OPCODE_PING, b"", fin=False, mask=key())
    return bytes(out)
