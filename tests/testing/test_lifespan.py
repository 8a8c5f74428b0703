"""The app's lifespan runs as the apps do: bounded, and its crashes fail only the test."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from panther_ws.hosting.lifespan import LifespanTimeout
from panther_ws_testing import AppCrashed, AppIgnoredCancellation, WebsocketTestClient

pytestmark = pytest.mark.anyio


async def _swallow_cancellation_forever(finally_ran: list[bool]) -> None:
    try:
        while True:
            try:
                await anyio.sleep(0.01)
            except anyio.get_cancelled_exc_class():
                pass  # wrong, and it never stops: the client must give up on it
    finally:
        finally_ran.append(True)


async def test_a_lifespan_that_swallows_its_cancellation_is_abandoned() -> None:
    finally_ran: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await _swallow_cancellation_forever(finally_ran)

    with pytest.raises(AppIgnoredCancellation) as error:
        async with WebsocketTestClient(app, timeout=0.2):
            pass
    assert "the app's lifespan did not finish within 0.2 s after it was cancelled" in str(
        error.value
    )
    assert "in _swallow_cancellation_forever(): await anyio.sleep(0.01)" in str(error.value)
    assert finally_ran == [True]


async def test_a_lifespan_that_never_answers_shutdown_nor_stops_is_bounded_twice() -> None:
    finally_ran: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await _swallow_cancellation_forever(finally_ran)

    with pytest.raises(AppIgnoredCancellation) as error:
        async with WebsocketTestClient(app, timeout=0.2):
            pass
    assert isinstance(error.value.__context__, LifespanTimeout)
    assert finally_ran == [True]


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
@pytest.mark.parametrize("crash", [KeyboardInterrupt, SystemExit])
async def test_a_keyboard_interrupt_in_the_lifespan_fails_only_the_test(
    phase: str, crash: type[BaseException]
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == f"lifespan.{phase}":
                raise crash()
            await send({"type": "lifespan.startup.complete"})

    entered = False
    with pytest.raises(AppCrashed) as error:
        async with WebsocketTestClient(app):
            entered = True
    assert entered is (phase == "shutdown")
    assert isinstance(error.value.__cause__, crash)
    assert "the app for 'lifespan' raised" in str(error.value)


async def test_the_lifespan_state_reaches_connections_as_before() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["db"] = "ready"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["state"]["db"]})
        await receive()

    async with WebsocketTestClient(app) as client, client.connect("/") as ws:
        assert await ws.receive() == "ready"
