"""The app's lifespan runs as the apps do: bounded, and its crashes fail only the test."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from panther_ws.hosting.lifespan import LifespanError, LifespanTimeout
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


async def _no_route_for_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare Channels ``URLRouter``: a websocket app that raises on any other scope."""
    if scope["type"] != "websocket":
        raise ValueError(f"No route found for path {scope.get('path', '')!r}.")
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "served"})
    await receive()


async def test_auto_serves_an_app_whose_lifespan_raises_as_uvicorn_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="panther_ws.lifespan")
    async with WebsocketTestClient(_no_route_for_lifespan, lifespan="auto") as client:
        async with client.connect("/") as ws:
            assert await ws.receive() == "served"
        assert client.lifespan_state == {}
    assert "ASGI 'lifespan' protocol appears unsupported" in caplog.text


async def test_on_fails_the_test_when_the_lifespan_raises() -> None:
    with pytest.raises(LifespanError, match="lifespan 'on': the app raised ValueError") as error:
        async with WebsocketTestClient(_no_route_for_lifespan, lifespan="on"):
            pass
    assert isinstance(error.value.__cause__, ValueError)


async def test_on_fails_the_test_when_the_lifespan_returns_without_answering() -> None:
    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    with pytest.raises(LifespanError, match=r"returned without answering lifespan\.startup"):
        async with WebsocketTestClient(silent, lifespan="on"):
            pass


async def test_off_never_calls_the_app_with_a_lifespan_scope() -> None:
    scopes: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope["type"])
        await _no_route_for_lifespan(scope, receive, send)

    async with WebsocketTestClient(app, lifespan="off") as client:
        async with client.connect("/") as ws:
            assert await ws.receive() == "served"
    assert scopes == ["websocket"]


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_fails_the_test_in_auto_and_on(mode: str) -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(LifespanError, match="no database"):
        async with WebsocketTestClient(failing, lifespan=mode):  # type: ignore[arg-type]
            pass
