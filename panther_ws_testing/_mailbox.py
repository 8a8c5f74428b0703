"""The harness's queue between the test's task and the app's task.

Every round trip in a test crosses it twice, so its cost is the harness's overhead: it waits
with the backend's own event class (:class:`panther_ws._primitives.Primitives`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from panther_ws._primitives import Event, Primitives


class Mailbox:
    """A queue for one consumer: a deque plus a wake-up event created only when waiting.

    Cheaper than a memory object stream per message, which matters: the harness's own
    overhead is what a test suite full of round trips pays for.
    """

    __slots__ = ("_items", "_primitives", "_waiter")

    def __init__(self, primitives: Primitives) -> None:
        self._items: deque[Any] = deque()
        self._primitives = primitives
        self._waiter: Event | None = None

    def put(self, item: Any) -> None:
        self._items.append(item)
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None

    def __bool__(self) -> bool:
        return bool(self._items)

    def peek(self) -> Any:
        return self._items[0]

    def pop(self) -> Any:
        return self._items.popleft()

    async def wait(self) -> None:
        """Wait until something is put or :meth:`wake` is called."""
        if self._waiter is None:
            self._waiter = self._primitives.event()
        await self._waiter.wait()
