"""Stateful fuzzing of websocket conversations: ``TestChat = fuzz_app(app, endpoints).TestCase``.

Conversations drawn by Hypothesis open up to N clients of an ASGI app (any: panther_ws,
Starlette, FastAPI, raw), send generated messages, receive, close with generated codes, drop
connections and, in wire mode, inject faults into the bytes; built-in and user invariants are
checked after every step, and the smallest failing conversation is printed as a pytest test
using ``WebsocketTestClient``. See docs/fuzzing.md.
"""

from panther_ws_testing.fuzz.checks import (
    ConversationFailure,
    ForbiddenCloseCode,
    LeftBehind,
    UnboundedBuffer,
    allowing,
    assert_app_at_rest,
    assert_bounded_unread,
    assert_close_code,
)
from panther_ws_testing.fuzz.endpoints import ConnectRequest, Endpoint, path_variable_values
from panther_ws_testing.fuzz.machine import (
    DEFAULT_ALLOWED,
    DEFAULT_SETTINGS,
    ConversationMachine,
    FuzzReport,
    FuzzTestCase,
    fuzz_app,
)
from panther_ws_testing.fuzz.settling import settle
from panther_ws_testing.fuzz.stateful import ConversationStateMachine

__all__ = [
    "DEFAULT_ALLOWED",
    "DEFAULT_SETTINGS",
    "ConnectRequest",
    "ConversationFailure",
    "ConversationMachine",
    "ConversationStateMachine",
    "Endpoint",
    "ForbiddenCloseCode",
    "FuzzReport",
    "FuzzTestCase",
    "LeftBehind",
    "UnboundedBuffer",
    "allowing",
    "assert_app_at_rest",
    "assert_bounded_unread",
    "assert_close_code",
    "fuzz_app",
    "path_variable_values",
    "settle",
]
