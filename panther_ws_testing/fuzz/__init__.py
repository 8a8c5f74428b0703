"""Stateful fuzzing of websocket conversations: ``TestChat = fuzz_app(app, endpoints).TestCase``.

A Hypothesis state machine opens up to N clients of an ASGI app (any: panther_ws, Starlette,
FastAPI, raw), sends generated messages, receives, closes with generated codes and drops
connections, checks built-in and user invariants, and prints the smallest failing
conversation as a pytest test using ``WebsocketTestClient``. See docs/fuzzing.md.
"""

from panther_ws_testing.fuzz.checks import (
    ConversationFailure,
    ForbiddenCloseCode,
    LeftBehind,
    allowing,
    assert_app_at_rest,
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

__all__ = [
    "DEFAULT_ALLOWED",
    "DEFAULT_SETTINGS",
    "ConnectRequest",
    "ConversationFailure",
    "ConversationMachine",
    "Endpoint",
    "ForbiddenCloseCode",
    "FuzzReport",
    "FuzzTestCase",
    "LeftBehind",
    "allowing",
    "assert_app_at_rest",
    "assert_close_code",
    "fuzz_app",
    "path_variable_values",
]
