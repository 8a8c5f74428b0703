"""Where the outcome of an app's behaviour depends on the server it is deployed on.

The test client answers every behaviour one way (the hosting layer's policy), but some of
those answers are not what every production server gives. When a test exercises one of
them, the client says so with a :class:`ServerDifferenceWarning` naming what uvicorn,
hypercorn and ``panther-ws serve`` each do, so "green in memory" cannot hide a difference
the deployment will show. The outcomes are measured: ``tests/hosting/test_differences.py``
runs each behaviour under real uvicorn 0.54 (``--ws wsproto``, ``websockets-sansio`` and
``websockets``), hypercorn 0.18 and ``panther-ws serve`` and checks every server against
the text here, so a server upgrade that changes its answer fails that test.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any


class ServerDifferenceWarning(UserWarning):
    """The app did something whose client-visible outcome differs between real servers."""


@dataclass(frozen=True)
class Difference:
    """One behaviour: what the app did, what a client sees on each server, what to do."""

    what: str
    test_client: str
    panther_ws_serve: str
    uvicorn: str
    hypercorn: str
    advice: str

    @property
    def message(self) -> str:
        """The warning: what happened, each distinct outcome once with its servers, advice."""
        servers: dict[str, list[str]] = {}
        for server, outcome in (
            ("the test client", self.test_client),
            ("panther-ws serve", self.panther_ws_serve),
            ("uvicorn", self.uvicorn),
            ("hypercorn", self.hypercorn),
        ):
            servers.setdefault(outcome, []).append(server)
        answers = "; ".join(f"{', '.join(names)}: {outcome}" for outcome, names in servers.items())
        return f"{self.what}. What a client sees on {answers}. {self.advice}"


_DROPS = "the TCP connection dropped without a close frame (1006)"
_BARE_403 = "a bare HTTP 403, neither code nor reason"


class Behaviour(enum.Enum):
    """App behaviours whose outcome is server-dependent, each with what the servers do."""

    RETURNED_WHILE_OPEN = Difference(
        what="the app returned while the websocket was open",
        test_client="close 1000",
        panther_ws_serve="close 1000",
        uvicorn=_DROPS,
        hypercorn="close 1011",
        advice="Send 'websocket.close' before returning to get one answer everywhere.",
    )
    RAISED_WHILE_OPEN = Difference(
        what="the app raised while the websocket was open",
        test_client="close 1011 (and the exception, re-raised in the test)",
        panther_ws_serve="close 1011",
        uvicorn=_DROPS,
        hypercorn="close 1011",
        advice=(
            "Catch it in the handler and close with a code of your own to get one answer "
            "everywhere."
        ),
    )
    NON_STR_CLOSE_REASON = Difference(
        what=(
            "the app sent 'websocket.close' before accepting with a reason that is not a str "
            "(FastAPI does for a validation error)"
        ),
        test_client="WebsocketRejected with status_code 403 and the app's code and reason",
        panther_ws_serve=_BARE_403,
        uvicorn=_BARE_403,
        hypercorn=_BARE_403,
        advice=(
            "No client on the wire sees that reason: assert on status_code, not on reason. "
            "After accept a non-str reason fails on every server (1011 or 1006)."
        ),
    )
    UNSENDABLE_CLOSE_BEFORE_ACCEPT = Difference(
        what=(
            "the app sent 'websocket.close' before accepting with a code or reason no close "
            "frame could carry"
        ),
        test_client="WebsocketRejected with status_code 403 and the app's code and reason",
        panther_ws_serve=_BARE_403,
        uvicorn=_BARE_403,
        hypercorn=_BARE_403,
        advice=(
            "No client on the wire sees them. After accept the same close fails: "
            "panther-ws serve closes with 1011, uvicorn --ws websockets drops the "
            "connection, uvicorn --ws wsproto and hypercorn cut the reason to 123 bytes."
        ),
    )


# The test's line that opened a session, where its warnings point: the test's code, the
# offset of its last instruction, the module's globals (a plain tuple: one is made at every
# connect). The line number is worked out from the offset only for a warning, as a frame's
# f_lineno costs a third of a whole connect() walk, and most sessions never warn.
CallSite = tuple[CodeType, int, dict[str, Any]]

# Frames skipped on the way out to the test: the harness's own, and the context managers
# the sync client wraps ``connect()`` in. A frame of the standard library or of an installed
# package (an event loop, anyio's portal, hypothesis) is no test's: then there is no line.
_HARNESS = os.path.dirname(__file__) + os.sep
_CONTEXTLIB = contextlib.__file__
_NOT_TESTS = tuple(
    {os.path.join(sysconfig.get_path(name), "") for name in ("stdlib", "purelib", "platlib")}
)


def calling_test() -> CallSite | None:
    """The first frame outside the harness: the test's line, or None if it is no test's.

    The walk starts at the caller's caller (the caller being the harness's ``connect()``):
    each frame looked at is an object made for the look, a third of the walk's cost.
    """
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        kind = _FILE_KINDS.get(filename)
        if kind is None:
            kind = _file_kind(filename)
        if kind is _TEST_FRAME:
            return frame.f_code, frame.f_lasti, frame.f_globals
        if kind is _NO_TEST_FRAME:
            return None
        frame = frame.f_back
    return None


class _Frame(enum.Enum):
    HARNESS = "skipped on the way out"
    TEST = "the test's"
    NO_TEST = "no test's: an event loop, a portal, a library"


# As module names, for the reason ``panther_ws.protocol.connection`` gives for its states'.
_HARNESS_FRAME = _Frame.HARNESS
_TEST_FRAME = _Frame.TEST
_NO_TEST_FRAME = _Frame.NO_TEST


# Each file's kind, as every connect() walks the same few frames: comparing prefixes costs more
# than the rest of the walk. Cleared when full (files made at run time, as exec() names them).
_FILE_KINDS: dict[str, _Frame] = {}
_MAX_FILE_KINDS = 4096


def _file_kind(filename: str) -> _Frame:
    if filename.startswith(_HARNESS) or filename == _CONTEXTLIB:
        kind = _HARNESS_FRAME
    elif filename.startswith(_NOT_TESTS):
        kind = _NO_TEST_FRAME
    else:
        kind = _TEST_FRAME
    if len(_FILE_KINDS) >= _MAX_FILE_KINDS:
        _FILE_KINDS.clear()
    _FILE_KINDS[filename] = kind
    return kind


def warn_server_difference(behaviour: Behaviour, *, path: str, at: CallSite | None) -> None:
    """Warn that the test just relied on an outcome that differs between servers.

    The warning is raised in the app's task, which has no frame of the test's: so it is
    placed at ``at``, the test's line that opened the websocket, or, without one, it names
    the websocket's ``path``.
    """
    message = behaviour.value.message
    if at is None:
        warnings.warn(f"{message} (the websocket to {path!r})", ServerDifferenceWarning, 2)
        return
    code, offset, module_globals = at
    warnings.warn_explicit(
        message,
        ServerDifferenceWarning,
        code.co_filename,
        _line_at(code, offset),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


def _line_at(code: CodeType, offset: int) -> int:
    """The source line of the instruction at ``offset``, as the frame's f_lineno said then."""
    for start, end, line in code.co_lines():
        if start <= offset < end and line is not None:
            return line
    return code.co_firstlineno
