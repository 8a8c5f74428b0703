"""Where the apps under test run: one task per session, all owned by the test client.

Each app runs as a task of the backend itself: a plain asyncio task, or a task in a trio
nursery under its own cancel scope. anyio's task group wraps every task it starts in a task
handle, a cancel scope, an event and a coroutine (about 10 us on either backend), a third
of a whole in-memory connect and the largest part of the harness's cost over a bare queue.
The app loses nothing by it (anyio works in any task), and what the task group would add
is done here: cancel the apps still running when the client closes, and wait for them.

An app that catches the cancellation and keeps awaiting would make that wait endless (and
on trio no task can outlive its nursery). So each app's coroutine is stepped through an
:class:`AppTask`, which can close it from inside its own task: after the timeout, the app
is abandoned at its next await and the client fails with :class:`AppIgnoredCancellation`.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractAsyncContextManager
from types import CodeType
from typing import Any

import anyio

from panther_ws.hosting.primitives import Event, Primitives, current_backend
from panther_ws_testing._exceptions import AppCrashed, AppIgnoredCancellation, crashes_the_run

# While cancelling, asyncio's cancellation is delivered again this often (see AppTasks).
_CANCEL_AGAIN_EVERY = 0.05


class AppTask:
    """One app's coroutine, stepped by hand so that it can be abandoned in its own task.

    Awaiting it forwards every value and exception between the backend and the app, as
    ``await`` would; once :meth:`abandon` was called, the next time the backend resumes
    it, the app's coroutine is closed instead (which runs its ``finally`` blocks in its
    own task, where its cancel scopes belong) and the task ends.
    """

    __slots__ = ("_cancel", "_coro", "abandoned", "cancel_requested", "name", "started")

    def __init__(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._coro = coro
        self.name = name
        self._cancel: Callable[[], object] = _nothing
        self.cancel_requested = False
        self.abandoned = False
        self.started = False  # its task has taken its first step

    def cancel(self) -> None:
        """Cancel the app; ``cancel_requested`` tells its own cancellations from ours."""
        self.cancel_requested = True
        self._cancel()

    def abandon(self) -> str:
        """Close the app at its next await; returns where it is waiting now."""
        self.abandoned = True
        self._cancel()  # wakes it up on asyncio; on trio it is resumed at once anyway
        return self.where()

    def where(self) -> str:
        """Where the app waits now, for error messages."""
        return where(self._coro)

    def reported(self, error: BaseException, path: str) -> BaseException | None:
        """What the test sees of the exception that ended the app; None if it is ours.

        None means the harness cancelled or abandoned the app and the exception must go
        on up the task. The rest is kept for the test: exceptions as they are (and
        ``pytest.fail()`` in the app, the test's own), and what would end the whole run
        wrapped in :class:`AppCrashed`.
        """
        if isinstance(error, Exception):
            return error
        if self.abandoned or (
            self.cancel_requested and isinstance(error, anyio.get_cancelled_exc_class())
        ):
            return None
        return AppCrashed(path, error) if crashes_the_run(error) else error

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        send, throw = coro.send, coro.throw
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = send(value) if error is None else throw(error)
            except StopIteration:
                return
            try:
                value = yield yielded
                error = None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                value, error = None, exc
            if self.abandoned:
                coro.close()
                return


class AppTasks:
    """Starts apps as tasks; leaving it cancels those still running and waits for them.

    The wait is bounded by ``timeout`` (None: unbounded): the apps still running then are
    abandoned and leaving raises :class:`AppIgnoredCancellation`.
    """

    __slots__ = (
        "_idle",
        "_loop",
        "_nursery",
        "_nursery_manager",
        "_primitives",
        "_running",
        "_timeout",
    )

    def __init__(self, primitives: Primitives, timeout: float | None) -> None:
        self._primitives = primitives
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[AppTask] = set()
        self._idle: Event | None = None
        self._nursery_manager: AbstractAsyncContextManager[Any] | None = None
        self._nursery: Any = None

    async def __aenter__(self) -> AppTasks:
        if current_backend() == "asyncio":
            self._loop = asyncio.get_running_loop()
        else:
            import trio

            self._nursery_manager = trio.open_nursery()
            self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        abandoned: list[tuple[str, str]] = []
        limit = self._timeout if self._timeout is not None else float("inf")
        if self._running:  # most clients end with every app done: no scope to make
            # The client's own scope may be cancelled (a test's fail_after): finish anyway.
            with anyio.CancelScope(shield=True):
                await self._cancel_all(limit)
                abandoned = [(task.name, task.abandon()) for task in self._running]
                if abandoned:
                    # Each ends at its next await: on trio at once, as it is still cancelled.
                    await self._cancel_all(limit)
        if self._nursery_manager is not None:
            await self._nursery_manager.__aexit__(None, None, None)
        if abandoned:
            raise AppIgnoredCancellation(abandoned, limit)

    async def _cancel_all(self, limit: float) -> None:
        # An asyncio cancellation is delivered once and an app may swallow it; anyio's (and
        # trio's) is delivered at every await until the task returns: cancel until it does.
        with anyio.move_on_after(limit):
            while self._running:
                for task in list(self._running):
                    task.cancel()
                    if not task.started and self._loop is not None:
                        # asyncio throws the cancellation into a task's coroutine before
                        # its first step: its body (and the finally that reports it) never
                        # runs, and neither does the app, whose coroutine is closed unstarted.
                        task._coro.close()
                        self._finished(task)
                self._idle = self._primitives.event()
                with anyio.move_on_after(_CANCEL_AGAIN_EVERY):
                    await self._idle.wait()

    def _finished(self, task: AppTask) -> None:
        self._running.discard(task)
        if not self._running and self._idle is not None:
            self._idle.set()

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> AppTask:
        """Start ``coro`` as the task ``name``; returns its :class:`AppTask`."""
        task = AppTask(coro, name)
        self._running.add(task)
        if self._loop is not None:
            # The task reports its own end: a done callback would cost a pass of the loop.
            task._cancel = self._loop.create_task(self._run(task), name=name).cancel
            return task
        import trio

        scope = trio.CancelScope()
        task._cancel = scope.cancel
        self._nursery.start_soon(self._in_scope, scope, task, name=name)
        return task

    async def _run(self, task: AppTask) -> None:
        task.started = True
        try:
            await task
        finally:
            self._finished(task)

    async def _in_scope(self, scope: Any, task: AppTask) -> None:
        task.started = True  # a trio task always runs, to its first checkpoint at least
        try:
            with scope:
                await task
        finally:
            self._finished(task)


def _nothing() -> None:
    """What cancelling does before the task exists."""


# Frames in these packages are the machinery an app awaits through (the host too), not the app.
_RUNTIME_PACKAGES = (
    "anyio",
    "asyncio",
    "outcome",
    "sniffio",
    "trio",
    "panther_ws.hosting",
    "panther_ws_testing",
)


def where(coro: Coroutine[Any, Any, Any]) -> str:
    """Where a suspended coroutine waits: the innermost frame outside the async runtime."""
    runtime = tuple(
        os.path.dirname(sys.modules[name].__file__ or "") + os.sep
        for name in _RUNTIME_PACKAGES
        if name in sys.modules
    )
    place: tuple[CodeType, int] | None = None
    awaited: Any = coro
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None and not frame.f_code.co_filename.startswith(runtime):
            place = (frame.f_code, frame.f_lineno)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    if place is None:
        return "not waiting in any code of its own"
    code, line = place
    source = linecache.getline(code.co_filename, line).strip()
    here = os.getcwd() + os.sep
    file = code.co_filename.removeprefix(here)
    return f"waiting at {file}:{line} in {code.co_name}(): {source}"
