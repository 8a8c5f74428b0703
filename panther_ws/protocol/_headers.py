"""HTTP headers as users write them, turned into the byte pairs h11 and the wire take.

Users pass ``[("x-token", "t")]``, ``{"X-Token": "t"}`` or ASGI's ``[(b"x-token", b"t")]``,
as h11 and httpx accept; every place the core takes headers goes through
:func:`normalize_headers`, so they all accept the same forms and refuse the same mistakes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from panther_ws.protocol.exceptions import ProtocolError

HeaderText = str | bytes
# Mapping keys are invariant: a dict[str, str] is no Mapping[str | bytes, ...].
HeadersInput = (
    Mapping[str, HeaderText] | Mapping[bytes, HeaderText] | Iterable[tuple[HeaderText, HeaderText]]
)


def normalize_headers(headers: HeadersInput, *, call: str) -> list[tuple[bytes, bytes]]:
    """``headers`` as (name, value) byte pairs, in order.

    A str name must be ASCII (a token); a str value is encoded as latin-1, the charset HTTP
    and ASGI servers decode header bytes with. ``call`` names the caller in the error.
    """
    try:
        if isinstance(headers, str | bytes):
            raise TypeError(f"they are one {type(headers).__name__}")
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return [_byte_pair(pair) for pair in pairs]
    except (TypeError, ValueError) as exc:  # not pairs, or a str outside the charset
        raise ProtocolError(
            f"{call} got headers {headers!r:.80}: {exc}; pass (name, value) pairs or a "
            "mapping, of str or bytes"
        ) from exc


def _byte_pair(pair: object) -> tuple[bytes, bytes]:
    # A str unpacks into characters: "xy" would silently become the header x: y.
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError(f"{pair!r:.40} is not a (name, value) pair")
    name, value = pair
    return _to_bytes(name, "ascii"), _to_bytes(value, "latin-1")


def _to_bytes(text: object, encoding: str) -> bytes:
    if isinstance(text, str):
        return text.encode(encoding)
    if isinstance(text, bytes | bytearray | memoryview):
        return bytes(text)
    raise TypeError(f"a header name or value is {type(text).__name__}, not str or bytes")
