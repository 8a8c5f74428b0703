"""The harness's queue between the test's task and the app's task, and its two primitives.

Every round trip in a test crosses this twice, so its cost is the harness's overhead. anyio
dispatches each ``checkpoint()`` and ``Event()`` to the running backend by looking the
backend up again (about 1 us each, a tenth of a whole round trip); :class:`Primitives`
looks it up once per client and calls the backend's own functions, which are what anyio
would have called. Everything else (task groups, cancel scopes, timeouts) stays anyio's.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import sniffio


class _Event(Protocol):
    def set(self) -> None: ...
    def wait(self) -> Awaitable[Any]: ...


class Primitives:
    """The running backend's zero-time yield and event class, as anyio would pick them."""

    __slots__ = ("checkpoint", "event")

    def __init__(self) -> None:
        self.checkpoint: Callable[[], Awaitable[None]]
        self.event: Callable[[], _Event]
        if sniffio.current_async_library() == "trio":
            import trio

            self.checkpoint, self.event = trio.lowlevel.checkpoint, trio.Event
        else:  # anyio's asyncio checkpoint is exactly sleep(0)
            self.checkpoint = functools.partial(asyncio.sleep, 0)
            self.event = asyncio.Event


class Mailbox:
    """A queue for one consumer: a deque plus a wake-up event created only when waiting.

    Cheaper than a memory object stream per message, which matters: the harness's own
    overhead is what a test suite full of round trips pays for.
    """

    __slots__ = ("_items", "_primitives", "_waiter")

    def __init__(self, primitives: Primitives) -> None:
        self._items: deque[Any] = deque()
        self._primitives = primitives
        self._waiter: _Event | None = None

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
