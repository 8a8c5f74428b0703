"""The running backend's own checkpoint and event class, looked up once.

anyio dispatches each ``checkpoint()`` and ``Event()`` to the running backend by looking the
backend up again (about 1 us each; on Python 3.11 also a ``getpid()`` system call), which is
a tenth of a whole in-memory round trip. The hot paths (the test harness's mailboxes, the
server's hand-off to the app) look it up once and call what anyio would have called, or, for
asyncio's event, something lighter. A timeout per await in a loop over thousands of
connections (a group send) would cost more than the sends (~20 us for anyio's
``move_on_after`` on asyncio, ~15 us for trio's): :func:`progress_deadline` is one timeout
for the whole loop, pushed back as the loop makes progress. Everything else (task groups,
cancel scopes, streams) stays anyio's.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, cast

import anyio

try:
    import sniffio
except ImportError:  # trio depends on sniffio: without it, only asyncio can be running
    sniffio = None  # type: ignore[assignment]


class Event(Protocol):
    """What ``asyncio.Event`` and ``trio.Event`` share, and all the hot paths use."""

    def set(self) -> None: ...
    def wait(self) -> Awaitable[Any]: ...


def current_backend() -> str:
    """The running backend's name, ``"asyncio"`` or ``"trio"``: the one backend check."""
    if sniffio is None:
        return "asyncio"
    return sniffio.current_async_library()


class ProgressDeadline(Protocol):
    """A timeout that restarts whenever the caller reports progress.

    ``async with progress_deadline(seconds) as deadline:`` cancels the block once ``seconds``
    pass without a ``deadline.renew()``; afterwards ``deadline.expired`` says whether it did
    (the cancellation is then suppressed, as anyio's ``move_on_after`` does).
    """

    expired: bool

    def renew(self) -> None: ...
    async def __aenter__(self) -> ProgressDeadline: ...
    async def __aexit__(self, *exc_info: Any) -> bool: ...


def progress_deadline(seconds: float) -> ProgressDeadline:
    """The running backend's cheapest :class:`ProgressDeadline`."""
    backend = current_backend()
    if backend == "trio":
        import trio

        return _ScopeDeadline(seconds, trio.move_on_after, trio.current_time)
    if backend == "asyncio" and sys.version_info >= (3, 11):
        return _AsyncioDeadline(seconds)
    return _ScopeDeadline(seconds, anyio.move_on_after, anyio.current_time)


class _AsyncioDeadline:
    __slots__ = ("_loop", "_seconds", "_timeout", "expired")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._timeout = asyncio.timeout(seconds)  # type: ignore[attr-defined,unused-ignore]
        self.expired = False

    def renew(self) -> None:
        self._timeout.reschedule(self._loop.time() + self._seconds)

    async def __aenter__(self) -> _AsyncioDeadline:
        await self._timeout.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        try:
            await self._timeout.__aexit__(*exc_info)
        except TimeoutError:
            if not self._timeout.expired():
                raise
            self.expired = True
            return True
        return False


class _ScopeDeadline:
    __slots__ = ("_clock", "_move_on_after", "_scope", "_seconds", "expired")

    def __init__(
        self, seconds: float, move_on_after: Callable[[float], Any], clock: Callable[[], float]
    ) -> None:
        self._seconds = seconds
        self._move_on_after = move_on_after
        self._clock = clock
        self._scope: Any = None
        self.expired = False

    def renew(self) -> None:
        self._scope.deadline = self._clock() + self._seconds

    async def __aenter__(self) -> _ScopeDeadline:
        self._scope = self._move_on_after(self._seconds)
        self._scope.__enter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        suppressed = bool(self._scope.__exit__(*exc_info))
        self.expired = bool(self._scope.cancelled_caught)
        return suppressed


class Primitives:
    """The running backend's zero-time yield and event class, as anyio would pick them."""

    __slots__ = ("checkpoint", "event")

    def __init__(self) -> None:
        self.checkpoint: Callable[[], Awaitable[None]]
        self.event: Callable[[], Event]
        if current_backend() == "trio":
            import trio

            self.checkpoint, self.event = trio.lowlevel.checkpoint, trio.Event
        else:
            self.checkpoint = _yield_to_the_loop
            self.event = functools.partial(_LoopEvent, asyncio.get_running_loop())


def _bare_yield() -> Generator[None, None, None]:
    """anyio's asyncio checkpoint, ``asyncio.sleep(0)``, without its call and its check of
    the delay: the bare yield it ends in, which lets every other ready task run first."""
    yield


# types.coroutine makes it awaitable; typeshed's signature does not say so.
_yield_to_the_loop = cast("Callable[[], Awaitable[None]]", types.coroutine(_bare_yield))


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
