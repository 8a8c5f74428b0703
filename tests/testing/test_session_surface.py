"""The session surface the test client shares with the network client: typed sends,
``receive_nothing``, ``ping`` and ``ws = await client.connect()``, in both modes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings

from panther_ws.protocol import ProtocolError
from panther_ws_testing import (
    WebsocketClosed,
    WebsocketRejected,
    WebsocketTestClient,
    strategies,
)
from tests.testing.apps import echo_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_typed_sends_pick_the_frame_type(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.send_text("hi")
            assert await ws.receive() == "hi"
            await ws.send_bytes(b"\x00\xff")
            assert await ws.receive() == b"\x00\xff"
            await ws.send_json({"a": [1, None]})
            assert await ws.receive() == '{"a":[1,null]}'
            await ws.send_json({"a": 1}, mode="binary")
            assert await ws.receive() == b'{"a":1}'


async def test_send_json_sends_a_string_as_json(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.send_json("")
            assert await ws.receive() == '""'
            await ws.send_json("")
            assert await ws.receive_json() == ""


async def test_typed_sends_refuse_the_other_type() -> None:
    async with WebsocketTestClient(echo_app) as client, client.connect("/echo") as ws:
        with pytest.raises(TypeError, match="send_text\\(\\) takes a str, got bytes"):
            await ws.send_text(b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="send_bytes\\(\\) takes bytes, got str"):
            await ws.send_bytes("x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mode must be 'text' or 'binary', got 'json'"):
            await ws.send_json(1, mode="json")  # type: ignore[arg-type]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=strategies.json_messages())
async def test_json_messages_round_trip_through_send_json(value: Any, wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.send_json(value)
            assert await ws.receive_json() == value
            await ws.send_json(value, mode="binary")
            assert await ws.receive_json() == value


async def test_ping_returns_and_the_app_sees_nothing(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            seen = len(ws.transcript)
            await ws.ping(b"are you there")
            await ws.ping()
            assert len(ws.transcript) == seen  # servers answer pings without the app
            await ws.send("still open")
            assert await ws.receive() == "still open"


async def test_ping_after_the_app_closed_raises_with_its_close_code(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/kick") as ws:
            await anyio.wait_all_tasks_blocked()  # the app has closed; the test has not read it
            with pytest.raises(WebsocketClosed) as closed:
                await ws.ping(b"x")  # no pong can come now
            assert (closed.value.code, closed.value.reason) == (4001, "kicked")
            assert await ws.wait_closed() == (4001, "kicked")


async def test_ping_after_the_client_closed_raises(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            await ws.close(4000, "bye")
            with pytest.raises(WebsocketClosed, match="code 4000"):
                await ws.ping()


async def test_ping_payload_is_checked_as_on_the_wire(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        async with client.connect("/echo") as ws:
            with pytest.raises(ProtocolError, match="a control frame holds at most 125"):
                await ws.ping(b"p" * 126)
            with pytest.raises(TypeError, match="ping\\(\\) takes bytes, got str"):
                await ws.ping("x")  # type: ignore[arg-type]
            await ws.ping(b"p" * 125)


async def test_await_connect_opens_a_session_the_test_closes(wire: bool) -> None:
    async with WebsocketTestClient(echo_app, wire=wire) as client:
        ws = await client.connect("/echo")
        await ws.send("hi")
        assert await ws.receive() == "hi"
        await ws.close(4002)
        assert client.lifespan_state == {"started": True}
        with pytest.raises(WebsocketRejected) as rejected:
            await client.connect("/reject")
        assert rejected.value.code == 1008


async def test_a_session_awaited_and_never_closed_is_closed_on_exit(wire: bool) -> None:
    client = WebsocketTestClient(echo_app, wire=wire)
    # The warning comes as the client exits, so the whole client is in the block.
    with pytest.warns(ResourceWarning, match="'/echo' was opened with 'await client.connect"):  # noqa: PT031
        async with client:
            ws = await client.connect("/echo")
            await ws.send("hi")
            assert await ws.receive() == "hi"
            disconnects = ws._scope["state"].setdefault("disconnects", [])
    assert disconnects == [1001]  # the app saw the client go away and returned
    assert ws.close_code == 1001
    with pytest.raises(WebsocketClosed):
        await ws.send("too late")
