"""pytest plugin (entry point ``pytest11``): ``ws_client`` and ``redis_url`` fixtures."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("panther-ws")
    group.addoption(
        "--require-redis",
        action="store_true",
        default=False,
        help="fail, instead of skipping, tests that need redis-server when it is missing",
    )
    parser.addini("ws_app", "module:attr of the ASGI app the ws_client fixture tests")
