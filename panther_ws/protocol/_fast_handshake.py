"""The common upgrade handshake parsed and written without h11, for both ends.

wsproto's handshake runs on h11: four h11 event objects per handshake, each validating its
headers with a regex per header, and h11's state machine, kept alive by the connection
afterwards. That is two-thirds of a handshake through our core (docs/protocol.md has the
numbers). Most handshakes are the
simplest kind: one read holding a whole head of CRLF-terminated lines, visible ASCII only,
each handshake header once. For those the functions here produce exactly what wsproto would
(the same ``Request``, the same 101 bytes, the same request bytes, the same negotiation) and
return ``None`` at the first doubt: any other method, version, byte or line ending, a repeated
handshake header, a header h11 gives a meaning of its own (``Content-Length``,
``Transfer-Encoding``, ``Expect``), anything wsproto would refuse. What they decline goes to
wsproto and h11 unchanged, so every error, rejection and HTTP answer stays theirs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from wsproto.events import Request
from wsproto.extensions import Extension
from wsproto.handshake import client_extensions_handshake
from wsproto.utilities import generate_accept_token, split_comma_header

Pairs = list[tuple[bytes, bytes]]

# Stricter than h11's grammar (h11._abnf): a token name, a value of visible ASCII with single
# inner spaces, no tabs, no obs-text, no control bytes.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = rb"(?:[\x21-\x7e]+(?: [\x21-\x7e]+)*)?"
_FIELDS = re.compile(rb"(" + _TOKEN + rb"): *(" + _VALUE + rb") *\r\n")
_LINES = rb"(?:" + _TOKEN + rb": *" + _VALUE + rb" *\r\n)"
_TARGET = re.compile(rb"[\x21-\x7e]+")
_REQUEST_HEAD = re.compile(rb"GET (" + _TARGET.pattern + rb") HTTP/1\.1\r\n(" + _LINES + rb"+)\r\n")
_RESPONSE_HEAD = re.compile(rb"HTTP/1\.1 101(?: " + _VALUE + rb")?\r\n(" + _LINES + rb"*)\r\n")
_NAME = re.compile(_TOKEN)
_PLAIN_VALUE = re.compile(_VALUE)

# Headers h11 acts on itself, or that wsproto reads: they decline when present (the first)
# or repeated (the second), as h11 may combine, refuse or give them meaning.
_H11_OWN = frozenset({b"content-length", b"transfer-encoding", b"expect"})
_REQUEST_ONCE = frozenset(
    {
        b"host",
        b"connection",
        b"upgrade",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    }
)
_RESPONSE_ONCE = frozenset(
    {
        b"connection",
        b"upgrade",
        b"sec-websocket-accept",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    }
)
# Extra headers a caller adds that h11 would move (Host goes first), check or act on.
_NOT_EXTRA = _H11_OWN | {b"host", b"connection", b"upgrade"}


def parse_request(data: bytes) -> tuple[Request, int] | None:
    """The upgrade request at the start of ``data`` as wsproto's server parses it, and its length.

    ``None`` unless it is whole and simple. A request wsproto would refuse is declined too, so
    its error comes from wsproto.
    """
    match = _REQUEST_HEAD.match(data)
    if match is None:
        return None
    target, block = match.groups()
    fields = _fields(block, _REQUEST_ONCE)
    if fields is None:
        return None
    host = connection = upgrade = version = None
    subprotocols: list[str] = []
    extensions: list[str] = []
    headers: Pairs = []
    for name, value in fields:
        if name == b"host":
            try:
                host = value.decode("idna")
            except UnicodeError:  # wsproto's error, through our ServerHandshake
                return None
            continue
        if name == b"sec-websocket-protocol":
            subprotocols.extend(split_comma_header(value))
            continue
        if name == b"sec-websocket-extensions":
            extensions.extend(split_comma_header(value))
            continue
        if name == b"connection":
            connection = value
        elif name == b"upgrade":
            upgrade = value
        elif name == b"sec-websocket-version":
            version = value
        headers.append((name, value))
    if (
        host is None
        or not _plain_upgrade(connection)
        or upgrade is None
        or upgrade.lower() != b"websocket"
        or version != b"13"
        or not any(name == b"sec-websocket-key" for name, _ in headers)
    ):
        return None
    request = Request(
        host=host,
        target=target.decode("ascii"),
        extra_headers=headers,
        subprotocols=subprotocols,
        extensions=extensions,
    )
    return request, match.end()


def accept_response(
    key: bytes, subprotocol: str | None, extensions: bytes | None, extra_headers: Pairs
) -> bytes | None:
    """The 101 that wsproto's server sends through h11, or ``None`` if h11 might differ."""
    headers = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", generate_accept_token(key)),
    ]
    if subprotocol is not None:
        headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode("ascii")))
    if extensions is not None:
        headers.append((b"Sec-WebSocket-Extensions", extensions))
    if not _plain_headers(headers) or not _plain_extra(extra_headers):
        return None
    return _head(b"HTTP/1.1 101 Switching Protocols", headers + extra_headers)


def request_bytes(request: Request, nonce: bytes) -> bytes | None:
    """The upgrade request wsproto's client sends through h11 with key ``nonce``, or ``None``."""
    try:
        target = request.target.encode("ascii")
        headers = [(b"Host", request.host.encode("idna"))]
        headers += [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", nonce),
            (b"Sec-WebSocket-Version", b"13"),
        ]
        if request.subprotocols:
            offered = ", ".join(request.subprotocols).encode("ascii")
            headers.append((b"Sec-WebSocket-Protocol", offered))
        offers = _extension_offers(request.extensions)
    except UnicodeError:  # wsproto's own error, when it builds the request
        return None
    if offers:
        headers.append((b"Sec-WebSocket-Extensions", offers))
    if (
        _TARGET.fullmatch(target) is None
        or not _plain_headers(headers)
        or not _plain_extra(request.extra_headers)
    ):
        return None
    return _head(b"GET " + target + b" HTTP/1.1", headers + request.extra_headers)


def parse_accept(
    data: bytes, nonce: bytes, subprotocols: Sequence[str], extensions: Sequence[Extension]
) -> tuple[str | None, Pairs, list[Extension], int] | None:
    """A 101 at the start of ``data`` taken as wsproto's client takes it, or ``None``.

    Returns the subprotocol, the other headers, the extensions negotiated (``extensions``
    finalized: pass objects the caller may discard) and the head's length. A 101 wsproto
    would refuse, and every other answer, is declined.
    """
    match = _RESPONSE_HEAD.match(data)
    if match is None:
        return None
    fields = _fields(match.group(1), _RESPONSE_ONCE)
    if fields is None:
        return None
    accept = connection = upgrade = None
    subprotocol: str | None = None
    accepts: list[str] = []
    headers: Pairs = []
    for name, value in fields:
        if name == b"connection":
            connection = value
        elif name == b"sec-websocket-extensions":
            accepts = split_comma_header(value)
        elif name == b"sec-websocket-accept":
            accept = value
        elif name == b"sec-websocket-protocol":
            subprotocol = value.decode("ascii")
        elif name == b"upgrade":
            upgrade = value
        else:
            headers.append((name, value))
    if (
        not _plain_upgrade(connection)
        or upgrade is None
        or upgrade.lower() != b"websocket"
        or accept != generate_accept_token(nonce)
        or (subprotocol is not None and subprotocol not in subprotocols)
    ):
        return None
    try:
        negotiated = client_extensions_handshake(accepts, extensions)
    except Exception:  # wsproto's refusal, or its parser's: wsproto's path reports it
        return None
    return subprotocol, headers, negotiated, match.end()


def _fields(block: bytes, once: frozenset[bytes]) -> Pairs | None:
    fields = [(name.lower(), value) for name, value in _FIELDS.findall(block)]
    seen: set[bytes] = set()
    for name, _ in fields:
        if name in _H11_OWN:
            return None
        if name in once:
            if name in seen:
                return None
            seen.add(name)
    return fields


def _plain_upgrade(connection: bytes | None) -> bool:
    return connection is not None and any(
        token.lower() == "upgrade" for token in split_comma_header(connection)
    )


def _plain_headers(headers: Pairs) -> bool:
    return all(_PLAIN_VALUE.fullmatch(value) is not None for _, value in headers)


def _plain_extra(headers: Pairs) -> bool:
    return all(
        _NAME.fullmatch(name) is not None
        and name.lower() not in _NOT_EXTRA
        and _PLAIN_VALUE.fullmatch(value) is not None
        for name, value in headers
    )


def _extension_offers(extensions: Sequence[Extension | str]) -> bytes:
    """wsproto's Sec-WebSocket-Extensions offer (``H11Handshake._initiate_connection``)."""
    offers: dict[str, str | bool] = {}
    for extension in extensions:
        assert isinstance(extension, Extension)
        offers[extension.name] = extension.offer()
    parts = []
    for name, params in offers.items():
        if isinstance(params, bool):
            if params:
                parts.append(name.encode("ascii"))
        else:
            parts.append(b"%s; %s" % (name.encode("ascii"), params.encode("ascii")))
    return b", ".join(parts)


def _head(start_line: bytes, headers: Pairs) -> bytes:
    """h11's serialization: the start line, the headers as given, a blank line."""
    lines = [start_line]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
