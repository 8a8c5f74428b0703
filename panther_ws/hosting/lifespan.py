"""Running an ASGI app's lifespan from the server side, as uvicorn does in "auto" mode."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.abc

from panther_ws.hosting.types import ASGIApp


class LifespanError(RuntimeError):
    """The app reported ``lifespan.startup.failed`` / ``shutdown.failed``, or answered wrongly."""


class LifespanTimeout(LifespanError, TimeoutError):
    """The app did not answer a lifespan event in time."""


class LifespanRunner:
    """Drives ``lifespan.startup`` / ``lifespan.shutdown`` for an app in a task it owns.

    An app that returns without answering does not support lifespan: that is fine, as in
    uvicorn. ``state`` is the lifespan state shared with every connection scope.

    ``startup(task_group)`` runs the lifespan as a task of ``task_group``. An embedder that
    runs app tasks its own way (the test client, which bounds how long an app may ignore its
    cancellation) starts :meth:`run` itself, calls ``startup()`` without a task group, and
    hands what escaped ``run()`` (``KeyboardInterrupt``, ...) to :meth:`fail`.
    """

    def __init__(self, app: ASGIApp, *, timeout: float | None = 10.0) -> None:
        self.app = app
        self.timeout = math.inf if timeout is None else timeout
        self.state: dict[str, Any] = {}
        self.supported = False
        self._inbox: deque[dict[str, Any]] = deque()
        self._inbox_ready = anyio.Event()
        self._replies: deque[MutableMapping[str, Any]] = deque()
        self._replied = anyio.Event()
        self._done = anyio.Event()
        self._error: BaseException | None = None

    async def startup(self, task_group: anyio.abc.TaskGroup | None = None) -> None:
        if task_group is not None:
            task_group.start_soon(self.run)
        await self._step("startup")
        self.supported = not self._done.is_set()

    async def shutdown(self) -> None:
        if self.supported:
            await self._step("shutdown")

    async def run(self) -> None:
        """The lifespan task: the app's lifespan scope, its exceptions kept for the caller."""
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()
            self._replied.set()

    def fail(self, error: BaseException) -> None:
        """The lifespan task ended with ``error`` outside ``run()``: the next step raises it."""
        self._error = error
        self._done.set()
        self._replied.set()

    async def _receive(self) -> dict[str, Any]:
        while not self._inbox:
            self._inbox_ready = anyio.Event()
            await self._inbox_ready.wait()
        return self._inbox.popleft()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self._replies.append(message)
        self._replied.set()

    async def _step(self, phase: str) -> None:
        self._inbox.append({"type": f"lifespan.{phase}"})
        self._inbox_ready.set()
        with anyio.move_on_after(self.timeout):
            while not self._replies and not self._done.is_set():
                self._replied = anyio.Event()
                await self._replied.wait()
        if self._replies:
            reply = self._replies.popleft()
            if reply["type"] == f"lifespan.{phase}.complete":
                return
            if reply["type"] == f"lifespan.{phase}.failed":
                raise LifespanError(f"lifespan {phase} failed: {reply.get('message', '')!s}")
            raise LifespanError(f"the app answered lifespan.{phase} with {reply!r}")
        if self._error is not None:
            # The app's own exception, with its type and traceback: the caller logs it
            # (a server) or shows it to the test author (the test client).
            raise self._error
        if self._done.is_set():
            if phase == "startup":
                return  # returned without answering: no lifespan support, as uvicorn reads it
            raise LifespanError("the app's lifespan returned before completing shutdown")
        raise LifespanTimeout(f"the app did not answer lifespan.{phase} within {self.timeout} s")
