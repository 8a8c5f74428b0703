"""The failures the harness reports about the app under test, beside the session errors.

The session errors live with the session surface the network client shares
(:mod:`panther_ws.network.session`); these two are the harness's own, about an app that did
something no network client could report::

    WebsocketError
    ├── WebsocketRejected          the app refused the connection
    ├── WebsocketClosed            the call needs an open connection
    ├── ReceiveTimeout             nothing arrived in time (also a TimeoutError)
    ├── AppCrashed                 the app raised KeyboardInterrupt, SystemExit or its own
    │                              CancelledError: the cause is the app's exception
    └── AppIgnoredCancellation     the app went on running after it was cancelled
                                   (also a TimeoutError)

Both are ``Exception``s: a test fails with them, the pytest run goes on.
"""

from __future__ import annotations

import asyncio

import anyio

from panther_ws.network.session import WebsocketError


class AppCrashed(WebsocketError):
    """The app raised an exception that would end the test run, not just the test.

    ``KeyboardInterrupt`` or ``SystemExit`` raised in an app task stops the event loop on
    asyncio (and the pytest run with it), and reaches the test wrapped in a
    ``BaseExceptionGroup`` on trio; a ``CancelledError`` the app raised without being
    cancelled looked like a dropped connection. A server would end that connection only:
    the test fails with this instead, the app's exception as its ``__cause__``.
    """

    def __init__(self, path: str, error: BaseException) -> None:
        self.path = path
        super().__init__(
            f"the app for {path!r} raised {error!r}; a server would close that connection "
            f"(1011) and go on serving, so the test fails here instead of the whole run"
        )
        self.__cause__ = error


class AppIgnoredCancellation(WebsocketError, TimeoutError):
    """The app went on running for the client's timeout after it was cancelled.

    An app that catches the cancellation and keeps awaiting would keep the test waiting
    forever. After the timeout the harness closes the app's coroutine at its next await (a
    ``GeneratorExit`` there, so its ``finally`` blocks run) and fails the test with this.
    """

    def __init__(self, apps: list[tuple[str, str]], timeout: float) -> None:
        self.apps = [name for name, _ in apps]
        lines = [
            f"the {name} did not finish within {timeout} s after it was cancelled; it was "
            f"{doing}. It was abandoned: its coroutine was closed at its next await."
            for name, doing in apps
        ]
        super().__init__("\n".join(lines))


def crashes_the_run(error: BaseException) -> bool:
    """Whether ``error``, escaping an app task, would end more than the test: see AppCrashed."""
    return isinstance(
        error,
        KeyboardInterrupt | SystemExit | asyncio.CancelledError | anyio.get_cancelled_exc_class(),
    )
