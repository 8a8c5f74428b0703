"""The running backend's own checkpoint and event class, looked up once.

anyio dispatches each ``checkpoint()`` and ``Event()`` to the running backend by looking the
backend up again (about 1 us each; on Python 3.11 also a ``getpid()`` system call), which is
a tenth of a whole in-memory round trip. The hot paths (the test harness's mailboxes, the
server's hand-off to the app) look it up once and call what anyio would have called, or, for
asyncio's event, something lighter. Everything else (task groups, cancel scopes, timeouts,
streams) stays anyio's.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import sniffio


class Event(Protocol):
    """What ``asyncio.Event`` and ``trio.Event`` share, and all the hot paths use."""

    def set(self) -> None: ...
    def wait(self) -> Awaitable[Any]: ...


class Primitives:
    """The running backend's zero-time yield and event class, as anyio would pick them."""

    __slots__ = ("checkpoint", "event")

    def __init__(self) -> None:
        self.checkpoint: Callable[[], Awaitable[None]]
        self.event: Callable[[], Event]
        if sniffio.current_async_library() == "trio":
            import trio

            self.checkpoint, self.event = trio.lowlevel.checkpoint, trio.Event
        else:  # anyio's asyncio checkpoint is exactly sleep(0)
            self.checkpoint = functools.partial(asyncio.sleep, 0)
            self.event = functools.partial(_LoopEvent, asyncio.get_running_loop())


class _LoopEvent:
    """``asyncio.Event`` for one loop, known when it is made.

    ``asyncio.Event.wait()`` asks for the running loop on every call, which on Python 3.11
    is a ``getpid()`` system call: one per message handed to an app.
    """

    __slots__ = ("_is_set", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._is_set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def wait(self) -> Awaitable[None]:
        # A future per waiter, as asyncio.Event does: a cancelled waiter cancels its own
        # future only.
        waiter = self._loop.create_future()
        if self._is_set:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter
