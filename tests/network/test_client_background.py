"""The network client's background tasks under ``async with connect(...)``: whatever ends the
body (a return, a cancellation, a server that never answers the close), the context leaves
no task behind and waits for the server's close no longer than ``close_timeout``."""

from __future__ import annotations

import asyncio
import gc
import weakref

import anyio
import anyio.abc
import pytest

from panther_ws.client import connect
from panther_ws.hosting.primitives import current_backend
from tests.network.apps import deaf_server
from tests.network.test_server_and_client import running

pytestmark = pytest.mark.anyio


def _client_tasks() -> int:
    """The client's asyncio tasks alive now (trio's nurseries make a leak impossible)."""
    if current_backend() != "asyncio":
        return 0
    return sum(_runs_the_client(task.get_coro()) for task in asyncio.all_tasks())


def _runs_the_client(awaitable: object) -> bool:
    """Whether a method of the session is anywhere in what this coroutine awaits."""
    while awaitable is not None:
        if getattr(awaitable, "__qualname__", "").startswith("ClientSession."):
            return True
        awaitable = getattr(awaitable, "cr_await", None)
    return False


async def test_leaving_the_context_ends_the_reader_and_the_keepalive() -> None:
    async with running() as server:
        with anyio.fail_after(5):  # the keepalive sleeps 60 s: leaving must cancel it
            async with connect(f"ws://127.0.0.1:{server.port}/echo", ping_interval=60) as ws:
                await ws.send("hi")
                assert await ws.receive() == "hi"
                assert _client_tasks() == (2 if current_backend() == "asyncio" else 0)
        assert _client_tasks() == 0
        assert ws.close_code == 1000


async def test_a_cancelled_body_still_closes_cleanly_and_leaves_no_task() -> None:
    async with running() as server:
        with anyio.CancelScope() as scope:
            async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
                scope.cancel()
                await ws.receive(timeout=None)  # nothing comes: the scope cancels the wait
        assert scope.cancelled_caught
        assert ws.close_code == 1000  # the close handshake ran, shielded
        assert _client_tasks() == 0


async def test_a_close_the_server_never_answers_is_waited_for_once() -> None:
    close_timeout = 0.5
    async with deaf_server() as port:
        started = anyio.current_time()
        async with connect(f"ws://127.0.0.1:{port}/", close_timeout=close_timeout) as ws:
            await ws.close()  # waits close_timeout for an answer that never comes
            assert ws.close_code is None
        # Leaving the context closes again: the close frame is already out and the wait
        # was given up once, so it does not wait a second close_timeout.
        waited = anyio.current_time() - started
        assert close_timeout <= waited < 2 * close_timeout - 0.05


@pytest.mark.parametrize("opening", ["async with", "await"])
async def test_a_finished_session_is_freed_without_the_cycle_collector(opening: str) -> None:
    # Its bound methods (in the reader, the stream's consumer, the receive timer) would keep
    # it in a cycle: a pass of the collector was ~25 us of every connect cycle.
    async with running() as server:
        url = f"ws://127.0.0.1:{server.port}/echo"
        gc.disable()
        try:
            if opening == "async with":
                async with connect(url) as ws:
                    await ws.send("x")
                    assert await ws.receive() == "x"
            else:
                ws = await connect(url)
                await ws.send("x")
                assert await ws.receive() == "x"
                await ws.close()
            assert ws.close_code == 1000
            freed = weakref.finalize(ws, lambda: None)
            core = weakref.ref(ws._core)
            del ws
            assert not freed.alive
            assert core() is None
        finally:
            gc.enable()
