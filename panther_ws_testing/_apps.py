"""Where the apps under test run: one task per session, all owned by the test client.

On asyncio each app is a plain asyncio task. anyio's task group wraps every task it starts
in a task handle, a cancel scope, an event and a coroutine (about 10 us), a third of a whole
in-memory connect and the largest part of the harness's cost over a bare queue. The app
loses nothing by it: anyio works in any asyncio task, and what the task group would add is
done here, which is to cancel the apps still running when the client closes, and wait for
them. On trio, tasks start in the client's task group, as anyio would start them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
import sniffio


class AppTasks:
    """Starts apps as tasks; :meth:`aclose` cancels those left and waits until they return."""

    __slots__ = ("_loop", "_running", "_task_group")

    def __init__(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        self._loop: asyncio.AbstractEventLoop | None = None
        if sniffio.current_async_library() == "asyncio":
            self._loop = asyncio.get_running_loop()
        self._running: set[asyncio.Task[None]] = set()

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> Callable[[], object]:
        """Start ``coro``; returns what cancels it."""
        if self._loop is None:
            return self._task_group.create_task(coro, name=name).cancel
        task = self._loop.create_task(coro, name=name)
        self._running.add(task)  # asyncio only keeps weak references to its tasks
        task.add_done_callback(self._running.discard)
        return task.cancel

    async def aclose(self) -> None:
        """Cancel every app still running and wait for it, as a task group's exit would.

        An asyncio cancellation is delivered once and an app may swallow it; anyio's is
        delivered at every await until the task returns, so the cancel is repeated here.
        """
        with anyio.CancelScope(shield=True):
            while self._running:
                for task in self._running:
                    task.cancel()
                await asyncio.wait(set(self._running), timeout=0.05)
