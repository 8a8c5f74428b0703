"""The harness's queue between the test's task and the app's task.

Every round trip in a test crosses it twice, so its cost is the harness's overhead: it waits
with the backend's own event class (:class:`panther_ws.hosting.primitives.Primitives`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from panther_ws.hosting.primitives import Event, Primitives
from panther_ws.protocol.events import Accepted, Closed, Message


class Inbox:
    """The client's queue: a deque plus wake-up events created only when someone waits.

    Cheaper than a memory object stream per message, which matters: the harness's own
    overhead is what a test suite full of round trips pays for. It pushes back on the app
    the way a socket does: it counts what waits unread, each message's length (characters
    or bytes) plus ``MESSAGE_COST`` for what keeping it costs. Once that passes ``limit``,
    :meth:`full` is true and the app's send waits in :meth:`wait_for_room` until the test
    reads, as a full socket buffer blocks a server's write. An app that floods a test that
    does not read then holds a few MiB, not gigabytes, in big messages or in many small ones.
    """

    __slots__ = ("_items", "_primitives", "_room_waiter", "_waiter", "limit", "unread")

    MESSAGE_COST = 1024

    def __init__(self, primitives: Primitives, limit: int) -> None:
        self._items: deque[Any] = deque()
        self._primitives = primitives
        self._waiter: Event | None = None
        self._room_waiter: Event | None = None
        self.limit = limit
        self.unread = 0

    def put(self, item: Any) -> None:
        self._items.append(item)
        if type(item) is Message:
            self.unread += len(item.data) + self.MESSAGE_COST
        if self._waiter is not None:
            self.wake()

    def wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None

    def __bool__(self) -> bool:
        return bool(self._items)

    def peek(self) -> Any:
        return self._items[0]

    def pop_accepted(self) -> Accepted | None:
        """The app's accept, if it is what comes first: most apps accept at once."""
        items = self._items
        if items and type(items[0]) is Accepted:
            accepted: Accepted = items.popleft()
            return accepted
        return None

    def pop(self) -> Any:
        item = self._items.popleft()
        if type(item) is Message:
            self.unread -= len(item.data) + self.MESSAGE_COST
            if self._room_waiter is not None and self.unread <= self.limit:
                self.make_room()
        return item

    async def wait(self) -> None:
        """Wait until something is put or :meth:`wake` is called."""
        if self._waiter is None:
            self._waiter = self._primitives.event()
        await self._waiter.wait()

    def pending_close(self) -> Closed | None:
        """The close behind the unread messages, if the connection closed (it comes last)."""
        last = self._items[-1] if self._items else None
        return last if isinstance(last, Closed) else None

    def full(self) -> bool:
        return self.unread > self.limit

    def make_room(self) -> None:
        """Let a waiting sender go on: there is room, or no reader any more."""
        if self._room_waiter is not None:
            self._room_waiter.set()
            self._room_waiter = None

    async def wait_for_room(self) -> None:
        """Wait until the reader has read enough, or :meth:`make_room` is called."""
        if self._room_waiter is None:
            self._room_waiter = self._primitives.event()
        await self._room_waiter.wait()
