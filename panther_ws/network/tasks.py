"""Background tasks owned as anyio's task group owns them, without its handle for each task.

anyio's task group gives every task a handle with an event and a cancel scope of its own:
~2 KiB of the 3.3 an idle server connection's task costs on asyncio, and ~85 us of CPU to
open a group, start a task in it and close it, most of a client's connect cycle over
aiohttp's. The server and the client use only ``start_soon`` and ``cancel_scope.cancel()``.
On trio a nursery has both, with the same meaning, and is what anyio wraps; on asyncio
:class:`_AsyncioTasks` keeps of each task only the cancel scope that gives it trio's
cancellation. Either way, what anyio's group guarantees holds: leaving waits for the tasks;
a task that raises cancels the others and the owner, and leaving raises an exception group;
cancelling the owner cancels the tasks; a task's cancellation sticks.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.abc

from panther_ws.hosting.primitives import Event, Primitives, current_backend

if sys.version_info < (3, 11):
    # anyio's dependency there; mypy runs on 3.11+, where it is not installed
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]


@asynccontextmanager
async def owned_tasks(*, sticky: bool = True) -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group for many long tasks (one per connection) or a few short ones.

    ``sticky=False`` is for tasks of our own that end at their first cancellation (the
    client's reader, keepalive and timer): on asyncio they are then cancelled as plain
    tasks, without a cancel scope each (~9 us apiece). Apps, which may swallow one, need
    ``sticky``.
    """
    if current_backend() == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            yield cast(anyio.abc.TaskGroup, nursery)
        return
    tasks = _AsyncioTasks(sticky)
    with tasks.cancel_scope:
        try:
            yield cast(anyio.abc.TaskGroup, tasks)
            await tasks.wait()
        finally:
            if tasks.running:  # the owner left early (cancelled, raised): the tasks end too
                tasks.cancel()
                with anyio.CancelScope(shield=True):
                    await tasks.wait()
    if tasks.failures:
        raise BaseExceptionGroup("unhandled errors in a background task", tasks.failures)


class _AsyncioTasks:
    """Plain asyncio tasks, each (if ``sticky``) in a cancel scope of its own.

    A task's scope makes its cancellation stick (every await after it raises, as on trio and
    in anyio's task group). Each task takes itself off the set when it ends, so leaving
    costs no pass of the loop for a done callback.
    """

    __slots__ = (
        "_all_done",
        "_cancelled",
        "_loop",
        "_new_event",
        "_sticky",
        "cancel_scope",
        "failures",
        "running",
    )

    def __init__(self, sticky: bool) -> None:
        self.cancel_scope = anyio.CancelScope()  # the owner's
        self.failures: list[BaseException] = []
        self._sticky = sticky
        self._loop = asyncio.get_running_loop()
        self._new_event = Primitives().event
        # The loop keeps only weak references to its tasks: these are the strong ones, each
        # with its state: False until it starts, then its scope (sticky) or True.
        self.running: dict[asyncio.Task[None], anyio.CancelScope | bool] = {}
        self._all_done: Event | None = None
        self._cancelled = False  # by cancel(): a task started after it starts cancelled

    def start_soon(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        # Called from a transport's callback too (a reader waking up), where anyio cannot
        # tell the backend: the task makes its scope itself, when it starts.
        if not self._sticky and self._cancelled_already():
            return  # one of ours, which would end at its first await: it is not started
        self.running[self._loop.create_task(self._run(function, args))] = False

    def _cancelled_already(self) -> bool:
        return self._cancelled or self.cancel_scope.cancel_called

    async def _run(self, function: Callable[..., Awaitable[Any]], args: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if not self._sticky:
                if self._cancelled_already():
                    return
                self.running[task] = True
                await function(*args)
            else:
                scope = self.running[task] = anyio.CancelScope()
                if self._cancelled_already():
                    scope.cancel()  # its first await raises
                with scope:
                    await function(*args)
        except asyncio.CancelledError:
            if self._sticky or not self._cancelled:
                raise  # not ours to swallow: the loop's, or the task's own doing
        except BaseException as exc:
            self.failures.append(exc)
            self.cancel_scope.cancel()
            self.cancel()
        finally:
            del self.running[task]
            if not self.running and self._all_done is not None:
                self._all_done.set()

    def cancel(self) -> None:
        """Cancel every task; one that has not started yet finds out when it starts."""
        self._cancelled = True
        for task, state in self.running.items():
            if state is True:
                task.cancel()
            elif state is not False:
                state.cancel()

    async def wait(self) -> None:
        while self.running:
            all_done = self._all_done = self._new_event()
            await all_done.wait()
