"""The one connection host, on the real core and bridge: its receive side and its policy."""

from __future__ import annotations

from typing import Any

import pytest

from panther_ws.hosting.host import AppInbox, ConnectionHost, Ending
from panther_ws.hosting.primitives import Primitives
from panther_ws.protocol import ClientConnection, ServerConnection
from panther_ws.protocol.asgi import ASGIConnectionBridge, Leniency
from panther_ws.protocol.events import Accepted, Closed, Event, Rejected, Request

pytestmark = pytest.mark.anyio


class Wire:
    """A client core and a host on a server core, the host's flush feeding the client."""

    def __init__(self) -> None:
        self.client = ClientConnection("testserver", "/")
        server = ServerConnection()
        server.receive_data(self.client.data_to_send())
        (request,) = server.events()
        assert isinstance(request, Request)
        self.bridge = ASGIConnectionBridge(server, request)
        self.inbox = AppInbox(Primitives())
        self.leniencies: list[Leniency] = []
        self.answers: list[bool] = []
        self.events: list[Event] = []
        self.host = ConnectionHost(
            self.bridge,
            self.inbox,
            self.bridge.scope,
            flush=self.flush,
            on_leniency=self.leniencies.append,
            on_answer=self.answers.append,
        )

    async def flush(self) -> None:
        self.client.receive_data(self.bridge.connection.data_to_send())
        self.events += self.client.events()


async def test_an_app_that_returns_before_answering_gets_http_500() -> None:
    wire = Wire()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    assert await wire.host.run(app) is None
    (rejected,) = wire.events
    assert isinstance(rejected, Rejected)
    assert rejected.status_code == 500
    assert wire.host.ending is Ending.RETURNED_BEFORE_ANSWER
    assert wire.answers == [False]


async def test_an_app_that_raises_after_accept_closes_1011_and_returns_its_error() -> None:
    wire = Wire()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise LookupError("boom")

    error = await wire.host.run(app)
    assert isinstance(error, LookupError)
    assert isinstance(wire.events[0], Accepted)
    assert wire.events[1] == Closed(1011, "")
    assert wire.host.ending is Ending.RAISED_WHILE_OPEN


async def test_an_app_that_returns_while_open_closes_1000() -> None:
    wire = Wire()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    await wire.host.run(app)
    assert wire.events[1] == Closed(1000, "")
    assert wire.host.ending is Ending.RETURNED_WHILE_OPEN


async def test_an_app_that_closes_itself_is_left_as_it_closed() -> None:
    wire = Wire()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})

    await wire.host.run(app)
    assert wire.events[1] == Closed(4001, "bye")
    assert wire.host.ending is None


async def test_after_a_rejection_every_receive_is_the_disconnect() -> None:
    wire = Wire()
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": ["a list"]})
        received.extend([await receive(), await receive()])

    await wire.host.run(app)
    disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    assert received == [disconnect, disconnect]
    assert wire.leniencies == [Leniency.NON_STR_CLOSE_REASON]
    assert isinstance(wire.events[0], Rejected)
    assert wire.events[0].status_code == 403


async def test_a_disconnect_is_queued_once_whoever_reports_it() -> None:
    inbox = AppInbox(Primitives())
    inbox.disconnect(1000, "bye")
    inbox.disconnect(1006)
    assert (await inbox.receive())["type"] == "websocket.connect"
    assert list(inbox.messages or ()) == [
        {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}
    ]


async def test_an_inbox_makes_its_queue_only_for_a_message_after_the_connect() -> None:
    # An empty deque is 760 bytes: an idle connection whose app took its connect has none.
    inbox = AppInbox(Primitives())
    assert await inbox.receive() == {"type": "websocket.connect"}
    assert inbox.messages is None
    inbox.deliver({"type": "websocket.receive", "text": "later"})
    assert await inbox.receive() == {"type": "websocket.receive", "text": "later"}


async def test_what_runs_on_the_next_wait_comes_after_the_messages_already_queued() -> None:
    inbox = AppInbox(Primitives())
    inbox.deliver({"type": "websocket.receive", "text": "first"})
    inbox.on_next_wait(lambda: inbox.disconnect(1000))
    assert (await inbox.receive())["type"] == "websocket.connect"
    assert (await inbox.receive())["text"] == "first"
    assert (await inbox.receive())["type"] == "websocket.disconnect"
