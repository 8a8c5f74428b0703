"""pytest plugin (entry point ``pytest11``): ``ws_client``, ``redis_url`` and ``redis_server``.

``ws_client`` tests the app of a ``ws_app`` fixture you define, or of the ``ws_app =
module:attr`` ini option; ``redis_url`` is a real redis-server on a free loopback port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from panther_ws.hosting.loading import AppLoadError, load_app
from panther_ws_testing._redis import redis_server, redis_url, report_header
from panther_ws_testing.client import WebsocketTestClient

__all__ = ["redis_server", "redis_url", "ws_client"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("panther-ws")
    group.addoption(
        "--require-redis",
        action="store_true",
        default=False,
        help="fail, instead of skipping, tests that need redis-server when it is missing",
    )
    parser.addini("ws_app", "module:attr of the ASGI app the ws_client fixture tests")


def pytest_report_header(config: pytest.Config) -> str:
    return report_header()


def _configured_app(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("ws_app")
    except pytest.FixtureLookupError:
        pass
    target = request.config.getini("ws_app")
    if not target:
        raise pytest.UsageError(
            "the ws_client fixture needs an app: define a 'ws_app' fixture, "
            "or set 'ws_app = module:attr' in the pytest ini options"
        )
    try:
        return load_app(str(target))
    except AppLoadError as exc:
        raise pytest.UsageError(f"ws_app: {exc}") from exc


@pytest.fixture
async def ws_client(request: pytest.FixtureRequest) -> AsyncIterator[WebsocketTestClient]:
    """A started :class:`WebsocketTestClient` for your app (use in ``@pytest.mark.anyio`` tests)."""
    async with WebsocketTestClient(_configured_app(request)) as client:
        yield client
