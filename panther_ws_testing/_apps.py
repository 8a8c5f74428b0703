"""Where the apps under test run: one task per session, all owned by the test client.

Each app runs as a task of the backend itself: a plain asyncio task, or a task in a trio
nursery under its own cancel scope. anyio's task group wraps every task it starts in a task
handle, a cancel scope, an event and a coroutine (about 10 us on either backend), a third
of a whole in-memory connect and the largest part of the harness's cost over a bare queue.
The app loses nothing by it (anyio works in any task), and what the task group would add
is done here: cancel the apps still running when the client closes, and wait for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import sniffio


class AppTasks:
    """Starts apps as tasks; leaving it cancels those still running and waits for them."""

    __slots__ = ("_loop", "_nursery", "_nursery_manager", "_running")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._nursery_manager: AbstractAsyncContextManager[Any] | None = None
        self._nursery: Any = None

    async def __aenter__(self) -> AppTasks:
        if sniffio.current_async_library() == "asyncio":
            self._loop = asyncio.get_running_loop()
        else:
            import trio

            self._nursery_manager = trio.open_nursery()
            self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._nursery_manager is not None:
            self._nursery.cancel_scope.cancel()
            await self._nursery_manager.__aexit__(None, None, None)
            return
        # An asyncio cancellation is delivered once and an app may swallow it; anyio's (and
        # trio's) is delivered at every await until the task returns: cancel until it does.
        with anyio.CancelScope(shield=True):
            while self._running:
                for task in self._running:
                    task.cancel()
                await asyncio.wait(set(self._running), timeout=0.05)

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> Callable[[], object]:
        """Start ``coro``; returns what cancels it."""
        if self._loop is not None:
            task = self._loop.create_task(coro, name=name)
            self._running.add(task)  # asyncio only keeps weak references to its tasks
            task.add_done_callback(self._running.discard)
            return task.cancel
        import trio

        scope = trio.CancelScope()
        self._nursery.start_soon(_in_scope, scope, coro, name=name)
        return scope.cancel


async def _in_scope(scope: Any, coro: Awaitable[None]) -> None:
    with scope:
        await coro
