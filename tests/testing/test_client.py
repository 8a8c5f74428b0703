"""WebsocketTestClient against a plain ASGI app, in direct and wire mode, asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from panther_ws.protocol.asgi import ASGIProtocolError
from panther_ws_testing import (
    ReceiveTimeout,
    WebsocketClosed,
    WebsocketRejected,
    WebsocketTestClient,
)
from tests.testing.apps import echo_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_echo_text_bytes_and_json(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.send("hi")
            assert await ws.receive_text() == "hi"
            await ws.send(b"\x00" * 70_000)
            assert await ws.receive_bytes() == b"\x00" * 70_000
            await ws.send({"detail": ("ok", None)})
            assert await ws.receive_json() == {"detail": ["ok", None]}


async def test_accept_details_are_visible(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo", subprotocols=["chat", "v2"]) as ws:
            assert ws.accepted
            assert ws.subprotocol == "chat"
            assert (b"x-path", b"/echo") in ws.response_headers


async def test_scope_has_query_headers_and_lifespan_state(wire: bool) -> None:
    async with (
        WebsocketTestClient(echo_app, wire=wire) as client,
        client.connect("/scope", headers={"X-Token": "abc"}, query_params={"page": 2}) as ws,
    ):
        assert await ws.receive_text() == repr((b"page=2", b"abc", {"started": True}))


async def test_close_before_accept_is_rejected_with_403(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/reject"):
                pass
    assert (rejected.value.status_code, rejected.value.code) == (403, 1008)
    assert rejected.value.reason == "go away"


async def test_denial_response_reaches_the_test(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/deny"):
                pass
    assert rejected.value.status_code == 401
    assert rejected.value.code is None
    assert rejected.value.body == b"no token"
    assert (b"x-why", b"token") in rejected.value.headers


async def test_server_initiated_close_without_sleep(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/kick") as ws:
            assert await ws.wait_closed() == (4001, "kicked")
            assert (ws.close_code, ws.close_reason) == (4001, "kicked")
            with pytest.raises(WebsocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 4001


async def test_close_returns_after_the_app_handled_the_disconnect(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.close(4002, "done")
            state = ws._scope["state"]
            assert state["disconnects"] == [4002]
            with pytest.raises(WebsocketClosed):
                await ws.send("late")


async def test_cancelling_the_test_cancels_the_app_it_left_running(wire: bool) -> None:
    app_cancelled = anyio.Event()

    async def stubborn_app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await anyio.sleep_forever()  # never reads the disconnect
        finally:
            app_cancelled.set()

    async with WebsocketTestClient(stubborn_app, wire=wire, lifespan=False) as client:
        with anyio.move_on_after(0.05) as test_scope:
            async with client.connect("/"):
                await anyio.sleep_forever()
        assert test_scope.cancelled_caught
        with anyio.fail_after(1):
            await app_cancelled.wait()


async def test_leaving_the_client_cancels_an_app_that_swallowed_a_cancellation(
    wire: bool,
) -> None:
    app_returned = anyio.Event()

    async def swallowing_app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            pass  # wrong, but apps do it: the next await must be cancelled too
        try:
            await anyio.sleep_forever()
        finally:
            app_returned.set()

    with anyio.fail_after(2):
        async with WebsocketTestClient(swallowing_app, wire=wire, lifespan=False) as client:
            with anyio.move_on_after(0.05):
                async with client.connect("/"):
                    await anyio.sleep_forever()
        assert app_returned.is_set()


@pytest.mark.parametrize("raise_app_exceptions", [True, False])
async def test_pytest_fail_in_the_app_fails_the_test(
    wire: bool, raise_app_exceptions: bool
) -> None:
    async def asserting_app(scope: dict[str, object], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        pytest.fail("the app saw something wrong")

    async with WebsocketTestClient(
        asserting_app, wire=wire, lifespan=False, raise_app_exceptions=raise_app_exceptions
    ) as client:
        with pytest.raises(pytest.fail.Exception, match="the app saw something wrong"):
            async with client.connect("/") as ws:
                await ws.receive()


async def test_a_silent_app_times_out_with_the_transcript(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire, timeout=0.2) as client:
        with pytest.raises(ReceiveTimeout, match="the app to accept"):
            async with client.connect("/silent"):
                pass


async def test_receive_timeout_shows_what_the_session_saw(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.send("one")
            await ws.receive()
            with pytest.raises(ReceiveTimeout) as timeout:
                await ws.receive(timeout=0.05)
            assert "'one'" in str(timeout.value)
            assert "websocket.accept" in str(timeout.value)


async def test_app_exception_keeps_its_type(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        with pytest.raises(KeyError, match="crashed in receive"):
            async with client.connect("/echo") as ws:
                await ws.send("crash")
                await ws.receive()


async def test_an_exception_before_accept_is_http_500_caused_by_it(wire: bool) -> None:
    with pytest.raises(WebsocketRejected) as rejected:
        async with WebsocketTestClient(echo_app, wire=wire) as client:
            async with client.connect("/crash-before-accept"):
                pass
    assert rejected.value.status_code == 500
    assert isinstance(rejected.value.__cause__, LookupError)


async def test_an_exception_behind_a_caught_rejection_still_fails_on_exit(wire: bool) -> None:
    with pytest.raises(LookupError, match="crashed before accept"):
        async with WebsocketTestClient(echo_app, wire=wire) as client:
            with pytest.raises(WebsocketRejected):
                async with client.connect("/crash-before-accept"):
                    pass


async def test_app_exception_hidden_looks_like_a_server(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire, raise_app_exceptions=False) as client:
        async with client.connect("/echo") as ws:
            await ws.send("crash")
            assert await ws.wait_closed() == (1011, "")
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/crash-before-accept"):
                pass
        assert rejected.value.status_code == 500


async def test_asgi_violation_is_reported_in_both_modes(wire: bool) -> None:
    for raise_app_exceptions in (True, False):
        async with WebsocketTestClient(
            echo_app, wire=wire, raise_app_exceptions=raise_app_exceptions
        ) as client:
            with pytest.raises(ASGIProtocolError, match="1005"):
                async with client.connect("/echo") as ws:
                    await ws.send("bad-close")
                    await ws.receive()


async def test_many_sessions_at_once_keep_their_own_scope(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/a") as a, client.connect("/b") as b:
            assert (b"x-path", b"/a") in a.response_headers
            assert (b"x-path", b"/b") in b.response_headers
            await b.send("to b")
            await a.send("to a")
            assert await a.receive() == "to a"
            assert await b.receive() == "to b"


async def test_async_for_raises_on_an_abnormal_close(wire: bool) -> None:
    # As in the websockets library: 1000/1001 end the loop, any other code is an error.
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/kick") as ws:
            with pytest.raises(WebsocketClosed, match="4001"):
                async for _ in ws:
                    pass


async def _lifespan_app(
    scope: dict[str, object], receive: object, send: object, behaviour: str
) -> None:
    assert scope["type"] == "lifespan"
    await receive()  # type: ignore[operator]
    if behaviour == "fail":
        await send({"type": "lifespan.startup.failed", "message": "no database"})  # type: ignore[operator]
    elif behaviour == "raise":
        raise ConnectionError("database is down")


async def test_lifespan_startup_failure_is_an_error_in_the_test() -> None:
    from panther_ws.hosting.lifespan import LifespanError

    async def failing(scope: dict[str, object], receive: object, send: object) -> None:
        await _lifespan_app(scope, receive, send, "fail")

    with pytest.raises(LifespanError, match="no database"):
        async with WebsocketTestClient(failing):
            pass


async def test_lifespan_on_keeps_the_exception_as_the_cause() -> None:
    from panther_ws.hosting.lifespan import LifespanError

    async def raising(scope: dict[str, object], receive: object, send: object) -> None:
        await _lifespan_app(scope, receive, send, "raise")

    with pytest.raises(LifespanError) as error:
        async with WebsocketTestClient(raising, lifespan="on"):
            pass
    assert isinstance(error.value.__cause__, ConnectionError)
    assert str(error.value.__cause__) == "database is down"


async def test_lifespan_true_still_means_auto_and_false_off() -> None:
    scopes: list[object] = []

    async def raising(scope: dict[str, object], receive: object, send: object) -> None:
        scopes.append(scope["type"])
        await _lifespan_app(scope, receive, send, "raise")

    async with WebsocketTestClient(raising, lifespan=True):
        pass  # auto: the raising lifespan is "unsupported"
    async with WebsocketTestClient(raising, lifespan=False):
        pass
    assert scopes == ["lifespan"]


async def test_an_app_that_returns_from_lifespan_does_not_support_it() -> None:
    async def silent(scope: dict[str, object], receive: object, send: object) -> None:
        await _lifespan_app(scope, receive, send, "return")

    async with WebsocketTestClient(silent) as client:
        assert client.lifespan_state == {}


async def test_receive_nothing_passes_when_the_app_stays_silent(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.receive_nothing(timeout=0.01)
            await ws.send("hi")
            with pytest.raises(
                AssertionError, match=r"expected no message within 0.5 s, received 'hi'"
            ):
                await ws.receive_nothing(timeout=0.5)


async def test_receive_nothing_is_fine_with_a_close(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/kick") as ws:
            await ws.receive_nothing(timeout=0.5)
            assert await ws.wait_closed() == (4001, "kicked")
