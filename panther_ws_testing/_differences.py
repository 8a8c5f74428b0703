"""Where the outcome of an app's behaviour depends on the server it is deployed on.

The test client answers every behaviour one way (the hosting layer's policy), but some of
those answers are not what every production server gives. When a test exercises one of
them, the client says so with a :class:`ServerDifferenceWarning` naming what uvicorn,
hypercorn and ``panther-ws serve`` each do, so "green in memory" cannot hide a difference
the deployment will show. The texts are measured by ``tests/hosting`` against real servers.
"""

from __future__ import annotations

import enum
import warnings


class ServerDifferenceWarning(UserWarning):
    """The app did something whose client-visible outcome differs between real servers."""


class Behaviour(enum.Enum):
    """App behaviours whose outcome is server-dependent, each with what the servers do."""

    RETURNED_WHILE_OPEN = (
        "the app returned while the websocket was open: the test client (and panther-ws "
        "serve, hypercorn) close it with 1000; uvicorn drops the TCP connection, so its "
        "clients see 1006. Close explicitly to get the same answer everywhere."
    )
    RAISED_WHILE_OPEN = (
        "the app raised while the websocket was open: the test client (and panther-ws "
        "serve) close it with 1011; uvicorn drops the TCP connection, so its clients see "
        "1006."
    )
    NON_STR_CLOSE_REASON = (
        "the app sent 'websocket.close' with a reason that is not a str before accepting "
        "(FastAPI does for a validation error): uvicorn, hypercorn and panther-ws serve "
        "answer HTTP 403 and never send the reason; after accept, servers fail differently."
    )


def warn_server_difference(behaviour: Behaviour, *, stacklevel: int = 2) -> None:
    """Warn that the test just relied on an outcome that differs between servers."""
    warnings.warn(behaviour.value, ServerDifferenceWarning, stacklevel=stacklevel + 1)
