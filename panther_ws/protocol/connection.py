"""What both ends of a WebSocket share: the open-connection state machine over wsproto.

wsproto's ``FrameProtocol`` parses and serializes frames (masking, UTF-8, extensions, close
payload validation); this layer adds what wsproto leaves to its caller: whole messages under a
size limit, automatic pongs, a completed close handshake, one ``Closed`` event per
connection, and a single exception type for every misuse. It drives wsproto's frame protocol
(built by wsproto's handshake or by our fast one, ``_fast_handshake``) without wsproto's
per-frame event objects, which cost more than parsing a small frame; the commonest frames
(whole data frames, no extension) are parsed and written by fast paths of ours (``_fast``,
``_framing.frame_bytes``).
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Iterator
from typing import cast

from wsproto.frame_protocol import CloseReason, Frame, FrameProtocol, Opcode, ParseFailed

from panther_ws.protocol._fast import take_messages
from panther_ws.protocol._framing import FIN_BINARY, FIN_TEXT, accelerate, frame_bytes
from panther_ws.protocol.close_codes import is_sendable_close_code
from panther_ws.protocol.events import Closed, Event, Message, Ping, Pong
from panther_ws.protocol.exceptions import ProtocolError

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
MAX_CLOSE_REASON_BYTES = 123
MAX_CONTROL_PAYLOAD = 125


class ConnectionState(enum.Enum):
    """Where a connection is in its life; every method says which states allow it."""

    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


# The states as module names, as `websockets` has them. On Python 3.11 ``ConnectionState.OPEN``
# goes through ``EnumType.__getattr__``, about 200 ns, ten times a global's look-up; the core
# and its servers read the state at every frame.
CONNECTING = ConnectionState.CONNECTING
OPEN = ConnectionState.OPEN
CLOSING = ConnectionState.CLOSING
CLOSED = ConnectionState.CLOSED

# wsproto's opcodes, for the same reason: every frame wsproto parses is told apart by them.
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_PING = Opcode.PING
_PONG = Opcode.PONG
_CLOSE = Opcode.CLOSE


class Connection:
    """Base of :class:`ServerConnection` and :class:`ClientConnection`; not built directly."""

    # False: every frame goes through wsproto (the differential tests' reference behaviour).
    _fast_path = True
    # False: every handshake goes through wsproto and h11 (``_fast_handshake``'s reference).
    _fast_handshake = True

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size <= 0:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        self.max_message_size = max_message_size
        self.state = CONNECTING
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._frames: FrameProtocol | None = None
        self._outgoing: list[bytes | bytearray] = []
        self._frame_iterator: Generator[Frame, None, None] | None = None
        # Events not yet yielded are _events[_taken:]. A list, emptied once all are yielded,
        # rather than a deque: an idle connection keeps 56 bytes instead of 760.
        self._events: list[Event] = []
        self._taken = 0
        self._fragments: list[str | bytes] = []
        self._fragments_size = 0
        self._closed_reported = False
        self._eof = False
        self._parse_fast = self._send_fast = False  # set when the connection opens
        self._masking = False

    # -- the byte pump's side -------------------------------------------------------------

    def receive_data(self, data: bytes | None) -> None:
        """Feed bytes read from the peer; ``None`` means the peer closed the stream (EOF)."""
        if self.state is CLOSED:
            if not data:
                return
            raise ProtocolError(
                f"receive_data() got {len(data)} bytes in state CLOSED; "
                "nothing may be read after the connection is closed"
            )
        if self.state is CONNECTING:
            self._receive_handshake_data(data)
            return
        if data is None:
            # Frames already received still count: Closed(1006) comes after them.
            self._eof = True
            return
        if self._eof:
            raise ProtocolError("receive_data() got bytes after the end of the stream (None)")
        assert self._frames is not None
        if self._parse_fast:  # what receive_bytes comes down to, without two calls per read
            self._frames._frame_decoder.buffer.feed(data)
        else:
            self._frames.receive_bytes(data)

    def events(self) -> Iterator[Event]:
        """Yield the events the received bytes produced, in order, each once.

        Frames are parsed as the caller iterates, so everything the peer sent *before* a
        protocol error is reported before the failure, and a server that hands each
        message to its app before asking for the next event can answer it before failing
        the connection. Iterate after every ``receive_data()``.
        """
        events = self._events
        while True:
            while self._taken < len(events):
                event = events[self._taken]
                self._taken += 1
                yield event
            events.clear()
            self._taken = 0
            frames = self._frames
            if frames is None or self._closed_reported:
                return
            if self._parse_fast:
                if not frames._frame_decoder.buffer.buffer:  # nor would wsproto find a frame
                    if self._eof:
                        self._end(CloseReason.ABNORMAL_CLOSURE, "")
                        continue
                    return
                if take_messages(frames, events, self.max_message_size):
                    continue
            # One frame generator per batch of bytes, kept across our yields.
            if self._frame_iterator is None:
                self._frame_iterator = frames.received_frames()
            try:
                for frame in self._frame_iterator:
                    self._on_frame(frame)
                    if self._events or self.state is CLOSED:
                        break
                else:
                    self._frame_iterator = None
                    if self._eof:
                        self._end(CloseReason.ABNORMAL_CLOSURE, "")
                        continue
                    return
            except ParseFailed as failure:  # the peer broke the protocol: 1002, 1007, ...
                self._frame_iterator = None
                self._fail(failure.code, str(failure))

    @property
    def has_pending_input(self) -> bool:
        """Whether received bytes are still waiting to be parsed, or reported, by ``events()``.

        A server that answers each message before parsing the next one (so a valid message
        is answered before a later protocol error fails the connection) only needs to wait
        for its app when this is true.
        """
        frames = self._frames
        # Messages the fast path parsed ahead are input the caller has not seen yet.
        return frames is not None and (
            len(frames._frame_decoder.buffer) > 0 or len(self._events) > self._taken
        )

    @property
    def wants_to_write(self) -> bool:
        """Whether ``data_to_send()`` has bytes (without draining them)."""
        return bool(self._outgoing)

    def data_to_send(self) -> bytes:
        """Drain and return the bytes that should be written to the peer."""
        # A list of chunks joined once: no copy per send, one per drain (none for one chunk).
        outgoing = self._outgoing
        if not outgoing:
            return b""
        data = bytes(outgoing[0]) if len(outgoing) == 1 else b"".join(outgoing)
        outgoing.clear()
        return data

    # -- the application's side -----------------------------------------------------------

    def send(self, data: str | bytes, *, fragment_size: int | None = None) -> None:
        """Queue one whole message: ``str`` as a text frame, ``bytes`` as a binary frame.

        ``fragment_size`` splits the payload over several frames of at most that many
        characters (text) or bytes (binary), as a peer with small buffers would.
        """
        if fragment_size is None and self._send_fast and self.state is OPEN:
            # The hot path: one whole frame, written here; with no extension that is all
            # wsproto's send_data does, after its type checks and fragment bookkeeping.
            if type(data) is bytes:
                self._outgoing.append(frame_bytes(FIN_BINARY, data, self._masking))
                return
            if type(data) is str:
                self._outgoing.append(frame_bytes(FIN_TEXT, data.encode("utf-8"), self._masking))
                return
        frames = self._require_open("send()")
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise ProtocolError(
                f"send() takes str or bytes, got {type(data).__name__}; "
                "serialize other values first"
            )
        payload = data if isinstance(data, str) else bytes(data)  # a buffer may be reused
        if fragment_size is None:
            self._outgoing.append(frames.send_data(payload, True))
            return
        if fragment_size <= 0:
            raise ProtocolError(f"send() got fragment_size {fragment_size}; it must be positive")
        step = fragment_size or len(payload) or 1
        for start in range(0, max(len(payload), 1), step):
            part = payload[start : start + step]
            finished = start + step >= len(payload)
            self._outgoing.append(frames.send_data(part, finished))

    def ping(self, payload: bytes = b"") -> None:
        """Queue a ping; the peer's pong arrives as a :class:`Pong` event."""
        frames = self._require_open("ping()")
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(
                f"ping() payload is {len(payload)} bytes; a control frame holds at most "
                f"{MAX_CONTROL_PAYLOAD}"
            )
        self._outgoing.append(frames.ping(bytes(payload)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the connection is CLOSED when the peer answers."""
        frames = self._require_open("close()")
        if not is_sendable_close_code(code):
            raise ProtocolError(
                f"close() got code {code}, which an endpoint may not send; "
                "use 1000-1003, 1007-1014 or 3000-4999"
            )
        if len(reason.encode("utf-8")) > MAX_CLOSE_REASON_BYTES:
            raise ProtocolError(
                f"close() reason is {len(reason.encode('utf-8'))} UTF-8 bytes; "
                f"a close frame holds at most {MAX_CLOSE_REASON_BYTES}"
            )
        self._outgoing.append(frames.close(code, reason))
        self._record_close(code, reason)
        self.state = CLOSING

    # -- subclasses -----------------------------------------------------------------------

    def _receive_handshake_data(self, data: bytes | None) -> None:
        raise NotImplementedError

    def _open(self, frames: FrameProtocol, trailing_data: bytes = b"") -> None:
        """Handshake done: from now on bytes are frames.

        ``frames`` is wsproto's frame protocol with the negotiated extensions: the one piece
        of the connection wsproto's handshake builds that this class uses (the fast
        handshake builds it alone).
        """
        accelerate(frames)
        self._frames = frames
        # Fast paths of ours for frames no extension touches; wsproto does all the rest.
        self._parse_fast = self._send_fast = self._fast_path and not frames.extensions
        self._masking = frames.client
        self.state = OPEN
        if trailing_data:
            frames.receive_bytes(trailing_data)

    def _require_open(self, call: str) -> FrameProtocol:
        if self.state is not OPEN or self._frames is None:
            raise ProtocolError(f"{call} cannot be called in state {self.state.value}")
        return self._frames

    # -- frames to events -----------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        assert self._frames is not None
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            self._on_data(frame.payload, frame.message_finished)  # type: ignore[arg-type]
        elif opcode is _PING:
            payload = bytes(frame.payload)  # type: ignore[arg-type]
            if self.state is OPEN:
                self._outgoing.append(self._frames.pong(payload))
            self._events.append(Ping(payload))
        elif opcode is _PONG:
            self._events.append(Pong(bytes(frame.payload)))  # type: ignore[arg-type]
        elif opcode is _CLOSE:
            code, reason = cast("tuple[int, str]", frame.payload)
            self._on_close(int(code), reason or "")

    def _on_data(self, data: str | bytes | bytearray, finished: bool) -> None:
        if self.state is CLOSED:
            return
        # In CLOSING (we sent a close frame) the peer may still be sending what it wrote
        # before it saw ours: deliver it rather than lose it.
        size = self._fragments_size + len(data)
        if size > self.max_message_size:
            self._fail(
                CloseReason.MESSAGE_TOO_BIG,
                f"message of at least {size} bytes exceeds the limit of {self.max_message_size}",
            )
            return
        if finished and not self._fragments:
            self._events.append(Message(bytes(data) if isinstance(data, bytearray) else data))
            return
        self._fragments.append(bytes(data) if isinstance(data, bytearray) else data)
        self._fragments_size = size
        if finished:
            fragments, self._fragments, self._fragments_size = self._fragments, [], 0
            if isinstance(fragments[0], str):
                self._events.append(Message("".join(fragments)))  # type: ignore[arg-type]
            else:
                self._events.append(Message(b"".join(fragments)))  # type: ignore[arg-type]

    def _on_close(self, code: int, reason: str) -> None:
        assert self._frames is not None
        self._fragments, self._fragments_size = [], 0
        if self.state is OPEN:
            # The peer started the closing handshake: echo its code (RFC 6455 5.5.1);
            # a close without a code (1005) is answered with 1000.
            echo = CloseReason.NORMAL_CLOSURE if code == CloseReason.NO_STATUS_RCVD else code
            self._outgoing.append(self._frames.close(echo))
            self._record_close(code, reason)
        self._end(self.close_code or code, self.close_reason or "")

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame and stop reading."""
        assert self._frames is not None
        if self.state is OPEN:
            reason = _truncate_reason(reason)
            self._outgoing.append(self._frames.close(int(code), reason))
            self._record_close(int(code), reason)
        self._end(self.close_code or int(code), self.close_reason or "")

    def _record_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason

    def _end(self, code: int, reason: str) -> None:
        self._record_close(int(code), reason)
        self.state = CLOSED
        self._fragments, self._fragments_size = [], 0
        self._stop_parsing()
        if not self._closed_reported:
            self._closed_reported = True
            assert self.close_code is not None
            self._events.append(Closed(self.close_code, self.close_reason or ""))

    def _stop_parsing(self) -> None:
        """Close wsproto's frame generators, so what they hold is freed now.

        Its ``FrameProtocol`` keeps a generator that refers back to it, a reference cycle, and
        both generators hold the last frame parsed (on a failure, the payload that failed):
        left suspended, all of it stays until the cyclic GC runs, which a flood of failing
        connections can outpace. Nothing is parsed after the connection ends.
        """
        iterator, self._frame_iterator = self._frame_iterator, None
        if iterator is not None:
            iterator.close()
        if self._frames is not None:
            self._frames._parse_more.close()


def _truncate_reason(reason: str) -> str:
    encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return encoded.decode("utf-8", errors="ignore")
