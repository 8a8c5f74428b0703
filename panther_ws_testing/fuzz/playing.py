"""The event loop conversations are played on, for the machine and its stateful form alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from anyio.from_thread import start_blocking_portal

Play = Callable[[Callable[[], Awaitable[None]]], None]


@contextmanager
def event_loop(backend: str) -> Iterator[Play]:
    """One loop for a whole run; a conversation is one call into it.

    On asyncio the loop is simply run until each conversation completes, in this thread
    (about 20 us a call); trio cannot be paused that way, so it runs in a portal thread.
    """
    if backend == "asyncio":
        loop = asyncio.new_event_loop()
        try:
            yield lambda play: loop.run_until_complete(play())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    else:
        with start_blocking_portal(backend) as portal:
            yield portal.call
