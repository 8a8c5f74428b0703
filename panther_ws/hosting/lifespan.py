"""Running an ASGI app's lifespan from the server side, in uvicorn's three modes.

Many ASGI apps know nothing of lifespan and fail on its scope (a bare Channels
``URLRouter`` raises ``ValueError``, hand-written apps assert their scope type), and some
return without answering (Panther). uvicorn's default, "auto", reads either as "lifespan
unsupported" and serves on; an app that *answers* ``lifespan.startup.failed`` did support
it and meant to stop the start. "on" makes every one of those a startup failure, "off"
never opens the scope. Every embedder (the server, the test client) gets the same answer
from this one runner.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import MutableMapping
from typing import Any, Literal

import anyio
import anyio.abc

from panther_ws.hosting.types import ASGIApp

LifespanMode = Literal["auto", "on", "off"]
LIFESPAN_MODES: tuple[LifespanMode, ...] = ("auto", "on", "off")

logger = logging.getLogger("panther_ws.lifespan")


class LifespanError(RuntimeError):
    """The app reported ``lifespan.startup.failed`` / ``shutdown.failed``, or answered wrongly.

    In mode "on" also: the lifespan scope raised (the app's exception is the ``__cause__``)
    or returned without answering ``lifespan.startup``.
    """


class LifespanTimeout(LifespanError, TimeoutError):
    """The app did not answer a lifespan event in time."""


class LifespanRunner:
    """Drives ``lifespan.startup`` / ``lifespan.shutdown`` for an app in a task it owns.

    ``mode`` is uvicorn's: "auto" treats a lifespan scope that raises during startup, or
    returns without answering it, as no lifespan support (logged once, serving goes on);
    "on" makes either a :class:`LifespanError`; "off" never calls the app with a lifespan
    scope. ``state`` is the lifespan state shared with every connection scope, and
    ``supported`` says whether startup completed (so shutdown will be sent).

    ``startup(task_group)`` runs the lifespan as a task of ``task_group``. An embedder that
    runs app tasks its own way (the test client, which bounds how long an app may ignore its
    cancellation) starts :meth:`run` itself, calls ``startup()`` without a task group, and
    hands what escaped ``run()`` (``KeyboardInterrupt``, ...) to :meth:`fail`: such an
    exception is an error in every mode, as it is not the app saying "no lifespan".
    """

    def __init__(
        self, app: ASGIApp, *, timeout: float | None = 10.0, mode: LifespanMode = "auto"
    ) -> None:
        if mode not in LIFESPAN_MODES:
            raise ValueError(f"lifespan mode must be 'auto', 'on' or 'off', got {mode!r}")
        self.app = app
        self.timeout = math.inf if timeout is None else timeout
        self.mode: LifespanMode = mode
        self.state: dict[str, Any] = {}
        self.supported = False
        self._inbox: deque[dict[str, Any]] = deque()
        self._inbox_ready = anyio.Event()
        self._replies: deque[MutableMapping[str, Any]] = deque()
        self._replied = anyio.Event()
        self._done = anyio.Event()
        self._error: BaseException | None = None
        self._crashed = False  # the error escaped run() (handed to fail()): never "unsupported"

    async def startup(self, task_group: anyio.abc.TaskGroup | None = None) -> None:
        if self.mode == "off":
            return
        if task_group is not None:
            task_group.start_soon(self.run)
        try:
            answered = await self._step("startup")
        except Exception as exc:
            if exc is not self._error or self._crashed:
                raise
            self._unsupported(f"the app raised {exc!r}", cause=exc)
            return
        if not answered:
            self._unsupported("the app returned without answering lifespan.startup")
            return
        self.supported = True

    async def shutdown(self) -> None:
        if not self.supported:
            return
        if self._done.is_set():
            # The lifespan ended after startup: its error, if it raised, else (an app that
            # returns right after startup.complete) nobody to answer shutdown, as in uvicorn.
            if self._error is not None:
                raise self._error
            return
        await self._step("shutdown")

    async def run(self) -> None:
        """The lifespan task: the app's lifespan scope, its exceptions kept for the caller."""
        if self.mode == "off":
            self._done.set()
            return
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
        self._crashed = True
        self._done.set()
        self._replied.set()

    def _unsupported(self, why: str, *, cause: Exception | None = None) -> None:
        if self.mode == "on":
            if cause is not None:
                # As uvicorn does in "on": the traceback for the log, then the start fails.
                logger.error("exception in the app's lifespan startup", exc_info=cause)
            raise LifespanError(f"lifespan 'on': {why}") from cause
        logger.info("ASGI 'lifespan' protocol appears unsupported (%s)", why)

    async def _receive(self) -> dict[str, Any]:
        while not self._inbox:
            self._inbox_ready = anyio.Event()
            await self._inbox_ready.wait()
        return self._inbox.popleft()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self._replies.append(message)
        self._replied.set()

    async def _step(self, phase: str) -> bool:
        """Sends ``lifespan.<phase>``; True once completed, False if the app returned first."""
        self._inbox.append({"type": f"lifespan.{phase}"})
        self._inbox_ready.set()
        with anyio.move_on_after(self.timeout):
            while not self._replies and not self._done.is_set():
                self._replied = anyio.Event()
                await self._replied.wait()
        if self._replies:
            reply = self._replies.popleft()
            if reply["type"] == f"lifespan.{phase}.complete":
                return True
            if reply["type"] == f"lifespan.{phase}.failed":
                raise LifespanError(f"lifespan {phase} failed: {reply.get('message', '')!s}")
            raise LifespanError(f"the app answered lifespan.{phase} with {reply!r}")
        if self._error is not None:
            # The app's own exception, with its type and traceback: the caller logs it
            # (a server) or shows it to the test author (the test client).
            raise self._error
        if self._done.is_set():
            if phase == "startup":
                return False  # returned without answering: startup() decides by the mode
            raise LifespanError("the app's lifespan returned before completing shutdown")
        raise LifespanTimeout(f"the app did not answer lifespan.{phase} within {self.timeout} s")
