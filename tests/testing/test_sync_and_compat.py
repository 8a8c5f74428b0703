"""The blocking client and the drop-in for Panther's WebsocketClient."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from panther_ws import App, GenericWebsocket
from panther_ws_testing import (
    AppCrashed,
    AppIgnoredCancellation,
    SyncWebsocketTestClient,
    WebsocketClient,
    WebsocketRejected,
)
from tests.testing.apps import echo_app


def test_sync_client_runs_sessions_on_one_loop() -> None:
    with SyncWebsocketTestClient(echo_app) as client:
        with client.connect("/a") as a, client.connect("/b") as b:
            a.send("one")
            b.send(b"two")
            assert a.receive() == "one"
            assert b.receive_bytes() == b"two"
            assert a.subprotocol is None
        with client.connect("/kick") as kicked:
            assert kicked.wait_closed() == (4001, "kicked")
        with pytest.raises(WebsocketRejected), client.connect("/reject"):
            pass


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_client_on_either_backend(backend: str) -> None:
    with SyncWebsocketTestClient(echo_app, backend=backend) as client, client.connect("/e") as ws:
        ws.send({"x": 1})
        assert ws.receive_json() == {"x": 1}


class Accepting(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()
        await self.send("hello")


class Rejecting(GenericWebsocket):
    async def connect(self) -> None:
        await self.close(4000, "no")


class Waiting(GenericWebsocket):
    """Waits for a message: Panther's own client would spin on websocket.connect forever."""

    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        await self.send(data)


APP = App({"ws/accept/": Accepting, "ws/reject/": Rejecting, "ws/wait/": Waiting})


def test_panther_style_client_returns_the_app_messages() -> None:
    messages = WebsocketClient(APP).connect("ws/accept/")
    assert messages[0]["type"] == "websocket.accept"
    assert messages[1] == {"type": "websocket.send", "text": "hello"}


def test_panther_style_client_sees_a_rejection() -> None:
    assert WebsocketClient(APP).connect("/ws/reject/") == [
        {"type": "websocket.close", "code": 4000, "reason": "no"}
    ]


def test_panther_style_client_does_not_hang_on_a_waiting_app() -> None:
    messages = WebsocketClient(APP).connect("/ws/wait/", headers={"X": "1"}, query_params={"a": 1})
    assert [m["type"] for m in messages] == ["websocket.accept"]


def test_panther_style_client_for_an_unknown_route() -> None:
    (close,) = WebsocketClient(APP).connect("/nowhere/")
    assert close["code"] == 1008


def test_sync_client_receive_nothing() -> None:
    with SyncWebsocketTestClient(echo_app) as client, client.connect("/e") as ws:
        ws.receive_nothing(timeout=0.01)
        ws.send("x")
        with pytest.raises(AssertionError, match="'x'"):
            ws.receive_nothing(timeout=0.5)


@pytest.mark.parametrize("wire", [False, True], ids=["direct", "wire"])
def test_sync_client_typed_sends_and_ping(wire: bool) -> None:
    with SyncWebsocketTestClient(echo_app, wire=wire) as client, client.connect("/e") as ws:
        ws.send_text("a")
        ws.send_bytes(b"b")
        ws.send_json("")
        ws.send_json([1], mode="binary")
        ws.ping(b"x")
        assert [ws.receive() for _ in range(4)] == ["a", b"b", '""', b"[1]"]


def test_panther_drop_in_abandons_an_app_that_swallows_its_cancellation() -> None:
    async def swallowing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        while True:
            try:
                await anyio.sleep(0.01)
            except anyio.get_cancelled_exc_class():
                pass

    with pytest.raises(AppIgnoredCancellation, match="the app for '/stuck' did not finish"):
        WebsocketClient(swallowing, timeout=0.2).connect("/stuck")


def test_panther_drop_in_reports_a_keyboard_interrupt_as_the_test_failure() -> None:
    async def interrupted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise KeyboardInterrupt

    with pytest.raises(AppCrashed) as crashed:
        WebsocketClient(interrupted).connect("/")
    assert type(crashed.value.__cause__) is KeyboardInterrupt
