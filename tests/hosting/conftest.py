"""The embedders as fixtures: ``host`` is one of them, chosen by indirect parametrization.

The real servers start together, once per test run, when the first test needs one (their
imports overlap: importing FastAPI is most of a start), and serve ``tests.hosting.apps:app``
(every behaviour, by path) until the run ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hosting import apps
from tests.hosting.embedders import (
    SERVERS,
    Embedder,
    HarnessEmbedder,
    HttpxEmbedder,
    NetworkEmbedder,
    Servers,
)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Every real server of :data:`SERVERS`, shared by the modules of this package."""
    running = Servers(tuple(SERVERS))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def host(request: pytest.FixtureRequest) -> Embedder:
    """The embedder named by the test's ``host`` parameter."""
    name: str = request.param
    if name in ("direct", "wire"):
        return HarnessEmbedder(apps.app, wire=name == "wire")
    if name == "httpx":
        return HttpxEmbedder(apps.app)
    assert name in SERVERS, name
    servers: Servers = request.getfixturevalue("servers")
    return NetworkEmbedder(name, servers.url(name))
