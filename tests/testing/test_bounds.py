"""No test can hang or balloon: whatever the app does, the test ends, in bounded memory."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from panther_ws_testing import (
    AppCrashed,
    AppIgnoredCancellation,
    ReceiveTimeout,
    WebsocketRejected,
    WebsocketTestClient,
)
from panther_ws_testing.client import MAX_UNREAD_BYTES

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# -- an app that ignores its cancellation --------------------------------------------------


async def test_an_app_that_keeps_swallowing_cancellation_is_abandoned(wire: bool) -> None:
    finally_ran = []

    async def swallowing_app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                try:
                    await anyio.sleep(0.01)
                except anyio.get_cancelled_exc_class():
                    pass  # wrong, and it never stops: the harness must give up on it
        finally:
            finally_ran.append(True)

    with pytest.raises(AppIgnoredCancellation) as error:
        async with WebsocketTestClient(
            swallowing_app, wire=wire, timeout=0.2, lifespan=False
        ) as client:
            async with client.connect("/stuck"):
                pass
    message = str(error.value)
    assert "the app for '/stuck' did not finish within 0.2 s after it was cancelled" in message
    assert "in swallowing_app(): await anyio.sleep(0.01)" in message
    assert error.value.apps == ["app for '/stuck'"]
    assert finally_ran == [True]  # closed at its await: its finally block ran
    # First the session saw the app go on after the close, and said where it was.
    assert isinstance(error.value.__context__, ReceiveTimeout)
    assert "in swallowing_app()" in str(error.value.__context__)


async def test_an_app_that_ignores_the_disconnect_and_its_cancellation_is_abandoned(
    wire: bool,
) -> None:
    async def deaf_app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            try:
                message = await receive()  # websocket.disconnect, again and again: ignored
                if message.get("text"):
                    await send({"type": "websocket.send", "text": message["text"]})
            except BaseException as exc:  # the cancellation too
                if isinstance(exc, GeneratorExit):
                    raise

    with pytest.raises(AppIgnoredCancellation, match="in deaf_app\\(\\)"):
        async with WebsocketTestClient(deaf_app, wire=wire, timeout=0.2, lifespan=False) as client:
            ws = await client.connect("/deaf").__aenter__()
            await ws.send("listening?")
            assert await ws.receive() == "listening?"


async def test_only_the_stuck_app_is_named() -> None:
    looping = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        if scope["path"] == "/fine":
            await receive()
            return
        looping.set()
        while True:
            try:
                await anyio.sleep(1)
            except anyio.get_cancelled_exc_class():
                pass

    with pytest.raises(AppIgnoredCancellation) as error:
        async with WebsocketTestClient(app, timeout=0.2, lifespan=False) as client:
            await client.connect("/fine").__aenter__()
            await client.connect("/stuck").__aenter__()
            await looping.wait()
    assert error.value.apps == ["app for '/stuck'"]


# -- exceptions that would end the whole run ------------------------------------------------


@pytest.mark.parametrize(
    "exception", [KeyboardInterrupt, SystemExit, asyncio.CancelledError], ids=lambda e: e.__name__
)
@pytest.mark.parametrize("raise_app_exceptions", [True, False])
async def test_a_base_exception_in_the_app_fails_only_the_test(
    wire: bool, exception: type[BaseException], raise_app_exceptions: bool
) -> None:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise exception("from the app")

    async with WebsocketTestClient(
        app, wire=wire, lifespan=False, raise_app_exceptions=raise_app_exceptions
    ) as client:
        with pytest.raises(AppCrashed) as crashed:
            async with client.connect("/") as ws:
                await ws.send("go")
                await ws.receive()
        assert ws.close_code == 1011  # what a client on the wire sees
    assert type(crashed.value.__cause__) is exception
    assert f"the app for '/' raised {exception.__name__}('from the app')" in str(crashed.value)


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
async def test_a_base_exception_before_accept_fails_only_the_test(
    wire: bool, exception: type[BaseException]
) -> None:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        raise exception()

    with pytest.raises(WebsocketRejected) as rejected:
        async with WebsocketTestClient(app, wire=wire, lifespan=False) as client:
            async with client.connect("/"):
                pass
    assert rejected.value.status_code == 500
    crashed = rejected.value.__cause__
    assert isinstance(crashed, AppCrashed)
    assert type(crashed.__cause__) is exception


async def test_a_base_exception_is_reported_when_the_session_ends(wire: bool) -> None:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise KeyboardInterrupt

    async with WebsocketTestClient(app, wire=wire, lifespan=False) as client:
        with pytest.raises(AppCrashed):
            async with client.connect("/"):
                pass  # the test never waits: leaving the session reports it


# -- an app that sends faster than the test reads ------------------------------------------


def _flooding_app(count: int, size: int, done: anyio.Event) -> Any:
    async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for index in range(count):
            await send({"type": "websocket.send", "bytes": index.to_bytes(4, "big") * (size // 4)})
        done.set()
        await receive()

    return app


async def test_an_app_flooding_a_test_that_does_not_read_stays_in_bounded_memory(
    wire: bool,
) -> None:
    sent_everything = anyio.Event()
    app = _flooding_app(1000, 64 * 1024, sent_everything)  # 64 MiB in all
    tracemalloc.start()
    try:
        async with WebsocketTestClient(app, wire=wire, lifespan=False) as client:
            async with client.connect("/flood") as ws:
                with anyio.move_on_after(0.5):
                    await sent_everything.wait()  # it cannot: it waits for the test to read
                assert not sent_everything.is_set()
                unread, _ = tracemalloc.get_traced_memory()
                for index in range(1000):
                    assert await ws.receive_bytes() == index.to_bytes(4, "big") * 16384
                _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert unread < MAX_UNREAD_BYTES + 12 * MiB  # the inbox and the transcript, not 64 MiB
    assert peak < MAX_UNREAD_BYTES + 16 * MiB


async def test_many_small_messages_all_arrive_in_order(wire: bool) -> None:
    sent_everything = anyio.Event()
    app = _flooding_app(20_000, 8, sent_everything)
    async with WebsocketTestClient(app, wire=wire, lifespan=False) as client:
        async with client.connect("/flood") as ws:
            for index in range(20_000):
                assert await ws.receive_bytes() == index.to_bytes(4, "big") * 2


async def test_an_app_blocked_on_a_send_ends_when_the_test_closes(wire: bool) -> None:
    stopped = []

    async def endless_sender(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                await send({"type": "websocket.send", "text": "x" * 100_000})
        except OSError:  # ClientDisconnected, as in uvicorn
            stopped.append(True)

    async with WebsocketTestClient(endless_sender, wire=wire, lifespan=False) as client:
        async with client.connect("/") as ws:
            assert await ws.receive_text() == "x" * 100_000
        assert stopped == [True]


# -- the transcript --------------------------------------------------------------------------


async def test_the_transcript_keeps_its_head_and_tail_and_says_what_it_dropped(
    wire: bool,
) -> None:
    sent_everything = anyio.Event()
    async with WebsocketTestClient(
        _flooding_app(1000, 4, sent_everything), wire=wire, lifespan=False
    ) as client:
        async with client.connect("/") as ws:
            for _ in range(1000):
                await ws.receive()
            transcript = ws.transcript
            assert transcript[0] == ("client", {"type": "websocket.connect"})
            assert transcript[1][1]["type"] == "websocket.accept"
            assert transcript[-1] == (
                "app",
                {"type": "websocket.send", "bytes": b"\x00\x00\x03\xe7"},
            )
            assert len(transcript) + transcript.dropped == 1002
            assert 0 < len(transcript) < 300
            with pytest.raises(ReceiveTimeout) as timeout:
                await ws.receive(timeout=0.01)
            dropped = f"{transcript.dropped} in the middle were dropped"
    assert f"the last 20 of 1002 messages; {dropped}" in str(timeout.value)


async def test_a_finished_session_is_freed_without_the_cycle_collector(wire: bool) -> None:
    """No reference cycle: a suite of thousands of connections never waits for gc passes."""
    from tests.testing.apps import echo_app

    gc.disable()
    try:
        async with WebsocketTestClient(echo_app, wire=wire) as client:
            async with client.connect("/echo") as ws:
                await ws.send("x")
                assert await ws.receive() == "x"
            session = weakref.ref(ws)
            del ws
            await anyio.lowlevel.checkpoint()  # the app task's own ending
            assert session() is None
    finally:
        gc.enable()
