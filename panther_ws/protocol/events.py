"""Events the sans-IO core reports from :meth:`Connection.events`.

Each event is a frozen dataclass, fired exactly when its docstring says; the core turns bytes
into these and nothing else. Slotted: one is built per message, and a slotted instance costs
half as much to build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event the core reports."""


@dataclass(frozen=True, slots=True)
class Request(Event):
    """Server side: a complete, valid upgrade request arrived; answer with accept() or reject()."""

    path: str
    query_string: bytes = b""
    headers: Headers = ()
    subprotocols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Accepted(Event):
    """Client side: the server accepted the upgrade; the connection is OPEN."""

    subprotocol: str | None = None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    """Client side: the server answered the upgrade with a plain HTTP response.

    The whole body has been read; the connection is CLOSED.
    """

    status_code: int
    headers: Headers = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Message(Event):
    """A whole message: fragments reassembled, text already validated and decoded."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Ping(Event):
    """A ping arrived; the core has already queued the pong."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong(Event):
    """A pong arrived (answer to our ping, or unsolicited)."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Closed(Event):
    """The connection ended: reported once, whichever side closed or failed it.

    ``code`` is 1006 when the stream ended without a close frame, and 1005 when the peer's
    close frame carried no code.
    """

    code: int
    reason: str = field(default="")


__all__ = [
    "Accepted",
    "Closed",
    "Event",
    "Headers",
    "Message",
    "Ping",
    "Pong",
    "Rejected",
    "Request",
]
