"""The built-in checks, as plain functions, so a printed reproduction calls the same code.

Failure tree (both are ``AssertionError``, so pytest reports them as failed assertions)::

    ConversationFailure
    ├── ForbiddenCloseCode   the app closed with a code its Endpoint does not allow
    ├── LeftBehind           connections or group memberships outlived every client
    └── UnboundedBuffer      a client stopped reading and the app's data kept piling up
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, MutableMapping
from typing import Any

from panther_ws import App
from panther_ws.hosting.types import ASGIApp
from panther_ws_testing import WebsocketTestSession
from panther_ws_testing.session import MAX_UNREAD_BYTES


class ConversationFailure(AssertionError):
    """The app broke a promise the fuzzing machine checks."""


class ForbiddenCloseCode(ConversationFailure):
    """The app closed a connection with a code its endpoint may not close with."""


class LeftBehind(ConversationFailure):
    """Something of a connection is still held after every client has left."""


class UnboundedBuffer(ConversationFailure):
    """The app's sends to a client that stopped reading did not wait: memory grows."""


def assert_close_code(path: str, code: int, allowed: Collection[int]) -> None:
    """Fail with :class:`ForbiddenCloseCode` unless ``code`` is one of ``allowed``."""
    if code not in allowed:
        raise ForbiddenCloseCode(
            f"the app closed {path!r} with code {code}; this endpoint may only close with "
            f"{sorted(allowed)}"
        )


def assert_app_at_rest(*apps: App) -> None:
    """Fail with :class:`LeftBehind` if an App still holds a connection or a group member.

    Called once every client has left: a registry entry or a membership left then is a
    leak that grows with every connection a real server sees.
    """
    for app in apps:
        if not isinstance(app, App):
            raise TypeError(f"assert_app_at_rest() takes panther_ws Apps, got {app!r}")
        connections, members = len(app.registry), app.registry.group_members_count()
        if connections or members:
            raise LeftBehind(
                f"after every client left, worker {app.worker_id} still holds {connections} "
                f"connection(s) and {members} group membership(s)"
            )


def assert_bounded_unread(session: WebsocketTestSession) -> None:
    """Fail with :class:`UnboundedBuffer` if ``session`` holds more than :func:`unread_bound`.

    While a client does not read, a server's send must block once its socket buffer is full;
    one that does not lets a slow client make the server hold without limit.
    """
    unread = session.unread_bytes
    bound = unread_bound(session.max_message_size)
    if unread > bound:
        raise UnboundedBuffer(
            f"a client that stopped reading holds {unread} bytes of the app's data; the "
            f"app's sends should have waited at {bound}"
        )


def unread_bound(max_message_size: int) -> int:
    """What a paused client may hold: a socket buffer's worth on each side of the core
    (written by the server core, not yet read by the test), each overshot by one message."""
    return 2 * (MAX_UNREAD_BYTES + max_message_size)


def allowing(app: ASGIApp | Any, *exception_types: type[BaseException]) -> ASGIApp:
    """``app``, with the exceptions of ``exception_types`` handled as a server would.

    An allowed exception ends its connection with a 1011 close (a rejection before accept)
    instead of failing the test, so a fuzzed conversation can go on past an error the app
    is allowed to raise, and its printed reproduction does the same.
    """

    async def guarded(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except exception_types:
            if scope["type"] != "websocket":
                raise
            with contextlib.suppress(Exception):  # the app may have closed already
                await send({"type": "websocket.close", "code": 1011, "reason": ""})

    return guarded
