"""The Hypothesis strategies generate what they promise, checked against the core."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from panther_ws import App, GenericWebsocket
from panther_ws.protocol import ClientConnection, ServerConnection
from panther_ws.protocol.close_codes import is_sendable_close_code
from panther_ws.protocol.events import Closed, Message
from panther_ws_testing import WebsocketTestClient, strategies


@given(strategies.close_codes())
def test_close_codes_are_sendable(code: int) -> None:
    assert is_sendable_close_code(code)


@given(strategies.invalid_close_codes())
def test_invalid_close_codes_are_not(code: int) -> None:
    assert not is_sendable_close_code(code)


@given(strategies.close_reasons())
def test_close_reasons_fit_a_close_frame(reason: str) -> None:
    assert len(reason.encode("utf-8")) <= 123


def _open_server() -> ServerConnection:
    client = ClientConnection("example.com", "/", permessage_deflate=False)
    server = ServerConnection(permessage_deflate=False)
    server.receive_data(client.data_to_send())
    list(server.events())
    server.accept()
    server.data_to_send()
    return server


@given(strategies.frames())
def test_valid_frames_make_exactly_one_message(data: bytes) -> None:
    server = _open_server()
    server.receive_data(data)
    events = list(server.events())
    assert [type(event) for event in events if not isinstance(event, Message)] == [
        type(event) for event in events if type(event).__name__ == "Ping"
    ]
    assert sum(isinstance(event, Message) for event in events) == 1


@given(strategies.frames(invalid=True))
def test_invalid_frames_fail_the_connection(data: bytes) -> None:
    server = _open_server()
    server.receive_data(data)
    closed = [event for event in server.events() if isinstance(event, Closed)]
    assert len(closed) == 1
    assert closed[0].code in (1002, 1007)
    assert server.data_to_send()  # the close frame is queued


class Echo(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        await self.send(data)


ECHO = App({"ws/echo/": Echo})


@pytest.mark.anyio
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=strategies.messages(), headers=strategies.headers(), query=strategies.query_params())
async def test_fuzzing_a_handler(
    message: str | bytes, headers: dict[str, str], query: dict[str, str]
) -> None:
    async with WebsocketTestClient(ECHO, wire=True) as client:
        async with client.connect("/ws/echo/", headers=headers, query_params=query) as ws:
            await ws.send(message)
            assert await ws.receive() == message
