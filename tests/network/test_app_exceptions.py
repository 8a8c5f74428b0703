"""No exception of an app's can stop the server: it ends that connection only."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from panther_ws.client import connect
from panther_ws_testing import WebsocketClosed, WebsocketRejected
from tests.network import apps
from tests.network.test_server_and_client import running

pytestmark = pytest.mark.anyio


async def only_that_connection_ends(base: str, raised: str, when: str) -> None:
    """Beside a bystander, the raising connection ends as the table in DESIGN.md says."""
    async with connect(f"{base}/echo") as bystander:
        if when == "after":
            async with connect(f"{base}/raise/{raised}/after") as ws:
                await ws.send("go")
                with anyio.fail_after(5):
                    assert await ws.wait_closed() == (1011, "")
        else:
            with pytest.raises(WebsocketRejected) as rejected:
                async with connect(f"{base}/raise/{raised}/before"):
                    pass
            assert rejected.value.status_code == 500
        await bystander.send("still here")
        assert await bystander.receive() == "still here"
    async with connect(f"{base}/echo") as newcomer:  # still serving
        await newcomer.send("new")
        assert await newcomer.receive() == "new"


BOTH_BACKENDS = [name for name in apps.RAISERS if name != "awaited-cancelled-task"]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("raised", BOTH_BACKENDS)
async def test_an_app_exception_of_any_kind_ends_only_its_connection(
    raised: str, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(apps.raising_app) as server:
        await only_that_connection_ends(f"ws://127.0.0.1:{server.port}", raised, when)
    assert _logged_app_tracebacks(caplog) == 1


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_awaiting_a_cancelled_task_ends_only_its_connection(
    when: str, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(apps.raising_app) as server:
        await only_that_connection_ends(
            f"ws://127.0.0.1:{server.port}", "awaited-cancelled-task", when
        )
    assert _logged_app_tracebacks(caplog) == 1


def _logged_app_tracebacks(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        record.exc_info is not None and "exception in the ASGI app" in record.getMessage()
        for record in caplog.records
        if record.name == "panther_ws.server" and record.levelno == logging.ERROR
    )


async def _shut_down_while_an_app_waits(app: Any, started: anyio.Event) -> None:
    """Shut the server down once ``app`` has started on a connection; within 5 s."""
    with anyio.fail_after(5):
        async with running(app, lifespan="off") as server:
            async with anyio.create_task_group() as task_group:

                async def client() -> None:
                    with pytest.raises((WebsocketRejected, WebsocketClosed, OSError)):
                        async with connect(f"ws://127.0.0.1:{server.port}/"):
                            pass

                task_group.start_soon(client)
                await started.wait()
                server.shutdown()


async def test_shutdown_still_cancels_an_app_that_has_not_answered() -> None:
    started = anyio.Event()

    async def slow_connect(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await anyio.sleep(60)  # a slow auth lookup

    await _shut_down_while_an_app_waits(slow_connect, started)  # not after the app's 60 s


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_shutdown_cancels_an_app_waiting_in_its_own_trio_nursery(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    import trio

    started = anyio.Event()

    async def app_with_a_nursery(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        async with trio.open_nursery() as nursery:  # its cancellation arrives as a group
            nursery.start_soon(trio.sleep_forever)
            started.set()
            await trio.sleep_forever()

    await _shut_down_while_an_app_waits(app_with_a_nursery, started)
    assert _logged_app_tracebacks(caplog) == 0  # our own cancellation, not the app's error


async def test_cancelling_serve_stops_it_while_apps_run() -> None:
    with anyio.fail_after(5):
        async with anyio.create_task_group() as outer:
            async with (
                running() as server,
                connect(f"ws://127.0.0.1:{server.port}/", close_timeout=0.5) as ws,
            ):
                await ws.send("hi")
                assert await ws.receive() == "hi"
                outer.cancel_scope.cancel()  # the app is in receive(): its cancellation is ours
                await anyio.sleep(10)
        assert outer.cancel_scope.cancelled_caught
