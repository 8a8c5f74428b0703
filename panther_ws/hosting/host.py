"""What a server owes an ASGI app for one websocket connection, written once.

The reference server, both links of the test client and the httpx transport host apps
through :class:`ConnectionHost`; they differ only in where the app's messages go (a
:class:`AppMessageSink`: the core's ASGI bridge, or the test client's direct events) and in
what ``flush`` does with the bytes. So one app behaviour has one outcome everywhere:

==================================================  ======================================
the app ...                                         the client sees
==================================================  ======================================
returns or raises before accept                     HTTP 500
closes before accept (any code, any reason)         HTTP 403
sends a ``websocket.http.response`` denial          that status, headers and body
raises after accept                                 close 1011
returns while open                                  close 1000 (as the ``websockets``
                                                    server does; hypercorn closes with 1011,
                                                    uvicorn drops the TCP connection)
closes with a code and reason                       that code and reason
==================================================  ======================================

The receive side keeps what a real server does: once the app has had its
``websocket.disconnect``, every later ``receive()`` returns it again.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from panther_ws.hosting.primitives import Event, Primitives
from panther_ws.hosting.types import ASGIApp, ASGIMessage
from panther_ws.protocol.asgi import ClientDisconnected, Leniency

# The policy's own messages, applied through the sink as if the app had sent them, so the
# bytes (or events) are the ones an app's own denial or close would produce.
_INTERNAL_ERROR_START: ASGIMessage = {
    "type": "websocket.http.response.start",
    "status": 500,
    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
}
_INTERNAL_ERROR_BODY: ASGIMessage = {
    "type": "websocket.http.response.body",
    "body": b"Internal Server Error",
}
_END_OF_DENIAL: ASGIMessage = {"type": "websocket.http.response.body", "body": b""}


class Ending(enum.Enum):
    """How the app left a connection it had not finished; what the host did about it."""

    RETURNED_BEFORE_ANSWER = "returned before accepting or rejecting: HTTP 500"
    RAISED_BEFORE_ANSWER = "raised before accepting or rejecting: HTTP 500"
    RETURNED_WHILE_OPEN = "returned while the websocket was open: close 1000"
    RAISED_WHILE_OPEN = "raised while the websocket was open: close 1011"


class AppMessageSink(Protocol):
    """Where the app's messages go: validated, then to the core or to the client's events."""

    @property
    def accepted(self) -> bool: ...
    @property
    def responding(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    @property
    def peer_connected(self) -> bool: ...
    def apply_app_message(self, message: Mapping[str, Any]) -> Leniency | None: ...


class AppInbox:
    """The receive side: what waits for the app's ``receive()``, and whether it waits.

    A separate object from the host, so that a sink that delivers to the app (a test
    client's link) holds this and not the host that holds the sink: no reference cycle, and
    a finished connection is freed at once rather than by the cycle collector.
    ``before_wait`` (optional) runs once when the app next finds nothing to receive: what
    the peer did meanwhile (its close) reaches the app after the app's own answers.
    """

    __slots__ = (
        "_checkpoint",
        "_connect_pending",
        "_disconnect_seen",
        "_moved",
        "_new_event",
        "_ready",
        "app_done",
        "app_waiting",
        "before_wait",
        "disconnected",
        "messages",
    )

    def __init__(self, primitives: Primitives) -> None:
        # The first message is always the connect, so it needs no queue; the queue is made
        # by the first delivery: an empty deque is ~0.7 KiB, most idle connections have none.
        self._connect_pending = True
        self.messages: deque[ASGIMessage] | None = None
        self._new_event = primitives.event
        self._checkpoint = primitives.checkpoint
        # Created when someone waits: most connections never need one of them.
        self._ready: Event | None = None
        self._moved: Event | None = None
        self._disconnect_seen = False
        self.app_waiting = False
        self.app_done = False
        self.disconnected = False  # a websocket.disconnect has been queued for the app
        self.before_wait: Callable[[], None] | None = None

    def deliver(self, message: ASGIMessage) -> None:
        """Queue ``message`` for the app's ``receive()``."""
        if self.messages is None:
            self.messages = deque()
        self.messages.append(message)
        if self._ready is not None:
            self._ready.set()

    def disconnect(self, code: int = 1006, reason: str = "") -> None:
        """Tell the app the connection is gone; only the first call queues anything."""
        if not self.disconnected:
            self.disconnected = True
            self.deliver({"type": "websocket.disconnect", "code": code, "reason": reason})

    def on_next_wait(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the app's task when it next finds nothing to receive."""
        self.before_wait = callback
        if self._ready is not None:
            self._ready.set()  # an app waiting now runs it at once

    def waits_for_more(self) -> bool:
        """The app waits in ``receive()`` with nothing queued: a message may go to it now."""
        return self.app_waiting and not self.messages

    async def receive(self) -> ASGIMessage:
        """The app's ``receive``."""
        if self._connect_pending:
            self._connect_pending = False
            return {"type": "websocket.connect"}
        while not (messages := self.messages):
            if self.before_wait is not None:
                before_wait, self.before_wait = self.before_wait, None
                before_wait()
                continue
            self.app_waiting = True
            if self._moved is not None:
                self._moved.set()
            ready = self._ready = self._new_event()
            await ready.wait()
        self.app_waiting = False
        message = messages.popleft()
        if message["type"] == "websocket.disconnect":
            messages.append(message)  # every later receive() sees the disconnect too
            if self._disconnect_seen:
                # A repeat: yield, so an app that loops on receive() cannot starve the others.
                await self._checkpoint()
            self._disconnect_seen = True
        return message

    async def wait_until_ready(self) -> None:
        """Until the app has handled every delivered message and waits for more (or ended).

        What the app sends before it next waits for input is sent before the reader goes
        on: a close that arrives meanwhile reaches the app after its answers, as on a
        network where those answers were already on their way.
        """
        while not self.app_done and (self.messages or not self.app_waiting):
            moved = self._moved = self._new_event()
            await moved.wait()

    def app_ended(self) -> None:
        self.app_done = True
        self.before_wait = None  # the link's method: no cycle through a finished inbox
        if self._moved is not None:
            self._moved.set()


class ConnectionHost:
    """One connection's app: its ``send``, its :class:`AppInbox`, and the failure policy.

    Embedders call plain methods on the hot path (``inbox.deliver``, ``inbox.disconnect``,
    ``inbox.app_waiting``); a reader that must not run ahead of the app awaits
    ``inbox.wait_until_ready()``. ``flush`` (optional, async) writes what the sink queued;
    ``report`` tells the app's exception from the embedder's own cancellation (None:
    re-raise it) and may wrap it; ``on_leniency`` hears of tolerated spec violations;
    ``on_answer(accepted)`` hears once that the handshake was answered.
    """

    __slots__ = (
        "_flush",
        "_on_answer",
        "_on_leniency",
        "_report",
        "answered",
        "ending",
        "inbox",
        "scope",
        "sink",
    )

    def __init__(
        self,
        sink: AppMessageSink,
        inbox: AppInbox,
        scope: Any,
        flush: Callable[[], Awaitable[None]] | None = None,
        report: Callable[[BaseException], BaseException | None] | None = None,
        on_leniency: Callable[[Leniency], None] | None = None,
        on_answer: Callable[[bool], None] | None = None,
    ) -> None:
        self.sink = sink
        self.inbox = inbox
        self.scope = scope
        self._flush = flush
        self._report = report
        self._on_leniency = on_leniency
        self._on_answer = on_answer
        self.answered = False  # the app accepted, rejected or denied (or the policy did)
        self.ending: Ending | None = None

    # -- the send side -------------------------------------------------------------------

    async def send(self, message: ASGIMessage) -> None:
        """The app's ``send``: validate and apply, flush, and disconnect after a rejection."""
        leniency = self.sink.apply_app_message(message)
        if leniency is not None and self._on_leniency is not None:
            self._on_leniency(leniency)
        if self._flush is not None:
            await self._flush()
        if not self.answered:
            self._check_answer()

    def _check_answer(self) -> None:
        sink = self.sink
        accepted = sink.accepted
        if accepted or sink.finished:
            self.answered = True
            if not accepted:
                # Rejected or denied: no close handshake follows, the socket is gone for the
                # app. (After a close while open, the embedder disconnects the app when the
                # peer's close arrives.)
                self.inbox.disconnect(1006)
            if self._on_answer is not None:
                self._on_answer(accepted)

    # -- the failure policy --------------------------------------------------------------

    async def run(self, app: ASGIApp) -> BaseException | None:
        """Run the app to its end, apply the policy; returns what it raised (reported).

        A ``ClientDisconnected`` escaping the app (a send after the client left, as the
        ASGI spec says) ends nothing that is not already over, and is returned as it is.
        """
        error: BaseException | None = None
        try:
            try:
                await app(self.scope, self.inbox.receive, self.send)
            except BaseException as exc:
                error = exc if self._report is None else self._report(exc)
                if error is None:
                    raise  # the embedder's own cancellation
            finally:
                self.inbox.app_ended()
            if self._left_open():  # most apps closed, or saw the peer leave: nothing to await
                await self.conclude(
                    raised=error is not None and not isinstance(error, ClientDisconnected)
                )
        finally:
            # The callbacks are the embedder's bound methods, and the embedder holds the
            # host: without them, a finished connection is freed at once, not by the cycle
            # collector (whose passes cost a suite of thousands of connections dearly).
            self._flush = self._report = self._on_leniency = self._on_answer = None
        return error

    def _left_open(self) -> bool:
        sink = self.sink
        return not sink.finished and sink.peer_connected

    async def conclude(self, *, raised: bool) -> None:
        """The app has ended: finish what it left open, as the table above says."""
        if not self._left_open():
            return
        sink = self.sink
        if sink.accepted:
            self.ending = Ending.RAISED_WHILE_OPEN if raised else Ending.RETURNED_WHILE_OPEN
            messages: tuple[ASGIMessage, ...] = (
                {"type": "websocket.close", "code": 1011 if raised else 1000},
            )
        elif sink.responding:
            messages = (_END_OF_DENIAL,)
        else:
            self.ending = Ending.RAISED_BEFORE_ANSWER if raised else Ending.RETURNED_BEFORE_ANSWER
            messages = (_INTERNAL_ERROR_START, _INTERNAL_ERROR_BODY)
        for message in messages:
            sink.apply_app_message(message)
        if self._flush is not None:
            try:
                await self._flush()
            except ClientDisconnected:
                return
        if not self.answered:
            self._check_answer()
