"""The runtime through the test harness, direct and wire mode, on asyncio and trio."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from typing import Any

import pytest

from panther_ws import (
    App,
    GenericWebsocket,
    close_websocket_connection,
    send_message_to_group,
    send_message_to_websocket,
    status,
)
from panther_ws.brokers import BrokerError, MemoryBroker
from panther_ws_testing import WebsocketClosed, WebsocketRejected, WebsocketTestClient

pytestmark = pytest.mark.anyio

EVENTS: list[tuple[str, Any]] = []


class Echo(GenericWebsocket):
    async def connect(self, user_id: int, room: str) -> None:
        await self.accept()
        await self.send(
            {
                "user_id": user_id,
                "room": room,
                "connection_id": self.connection_id,
                "agent": self.headers.user_agent,
                "token": self.headers["X-Token"],
                "missing": self.headers["X-Missing"],
                "query": self.query_params,
                "path_variables": self.path_variables,
            }
        )

    async def receive(self, data: str | bytes) -> None:
        if data == "fail":
            raise ZeroDivisionError("handler failed")
        if data == "close":
            await self.close(4000, "asked to")
            return
        await self.send(data)

    async def disconnect(self, code: int, reason: str) -> None:
        EVENTS.append(("disconnect", (code, reason)))


class Silent(GenericWebsocket):
    async def connect(self) -> None:
        pass


async def deny_all(connection: GenericWebsocket) -> bool:
    return False


class TokenAuth:
    async def __call__(self, connection: GenericWebsocket) -> str:
        token = connection.query_params.get("token")
        if token != "secret":
            raise PermissionError("bad token")
        return "alice"


class Authed(GenericWebsocket):
    auth = TokenAuth

    async def connect(self) -> None:
        await self.accept()
        await self.send(self.user)


class Denied(GenericWebsocket):
    permissions = [deny_all]

    async def connect(self) -> None:
        await self.accept()


class Relay(GenericWebsocket):
    """Sends to another connection from inside a handler, with the module functions."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(self.connection_id)

    async def receive(self, data: str | bytes) -> None:
        command, target, *rest = str(data).split(" ", 2)
        if command == "send":
            await self.send(await send_message_to_websocket(target, rest[0]))
        elif command == "kick":
            await close_websocket_connection(target, 4003, "kicked")


class Room(GenericWebsocket):
    async def connect(self, name: str) -> None:
        await self.accept()
        await self.join_group(name)
        await self.send("joined")

    async def receive(self, data: str | bytes) -> None:
        await send_message_to_group(self.path_variables["name"], data)


URLS = {
    "ws": {
        "<user_id>/<room>/": Echo,
        "silent/": Silent,
        "authed/": Authed,
        "denied/": Denied,
        "relay/": Relay,
        "room/<name>/": Room,
    }
}


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_connect_gets_typed_path_variables_headers_and_query(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        async with client.connect(
            "/ws/7/lobby/",
            headers={"User-Agent": "pytest", "X-Token": "t"},
            query_params={"a": "1"},
        ) as ws:
            hello = await ws.receive_json()
            assert hello["user_id"] == 7
            assert hello["room"] == "lobby"
            assert re.fullmatch(r"[0-9a-f]{32}", hello["connection_id"])
            assert (hello["agent"], hello["token"], hello["missing"]) == ("pytest", "t", None)
            assert hello["query"] == {"a": "1"}
            await ws.send("hi")
            assert await ws.receive() == "hi"
            await ws.send(b"\x01")
            assert await ws.receive() == b"\x01"


async def test_connection_ids_are_unique(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        ids = set()
        for _ in range(20):
            async with client.connect("/ws/1/r/") as ws:
                ids.add((await ws.receive_json())["connection_id"])
        assert len(ids) == 20


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/ws/silent/", 1000, ""),
        ("/ws/nowhere/", 1008, "no route for '/ws/nowhere/'"),
        ("/ws/x/lobby/", 1008, "path variable 'user_id' is 'x', not an int"),
        ("/ws/authed/?token=wrong", 1008, "authentication failed: bad token"),
        ("/ws/denied/", 1008, "permission denied: deny_all"),
    ],
)
async def test_rejections_name_their_cause(wire: bool, path: str, code: int, reason: str) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect(path):
                pass
    assert (rejected.value.status_code, rejected.value.code, rejected.value.reason) == (
        403,
        code,
        reason,
    )
    assert len(app.registry) == 0


async def test_auth_sets_the_user(wire: bool) -> None:
    async with WebsocketTestClient(App(URLS), wire=wire) as client:
        async with client.connect("/ws/authed/", query_params={"token": "secret"}) as ws:
            assert await ws.receive() == "alice"


async def test_disconnect_runs_once_whoever_closes(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        EVENTS.clear()
        async with client.connect("/ws/1/r/") as ws:
            await ws.receive()
            await ws.close(4100, "client bye")
        assert EVENTS == [("disconnect", (4100, "client bye"))]
        EVENTS.clear()
        async with client.connect("/ws/1/r/") as ws:
            await ws.receive()
            await ws.send("close")
            assert await ws.wait_closed() == (4000, "asked to")
        assert EVENTS == [("disconnect", (4000, "asked to"))]
    assert len(app.registry) == 0


async def test_hook_exception_closes_1011_and_is_reraised(wire: bool) -> None:
    app = App(URLS)
    EVENTS.clear()
    async with WebsocketTestClient(app, wire=wire) as client:
        with pytest.raises(ZeroDivisionError, match="handler failed"):
            async with client.connect("/ws/1/r/") as ws:
                await ws.receive()
                await ws.send("fail")
                await ws.receive()
    assert EVENTS == [("disconnect", (1011, ""))]
    assert len(app.registry) == 0


async def test_hook_exception_hidden_shows_1011_to_the_client(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire, raise_app_exceptions=False) as client:
        async with client.connect("/ws/1/r/") as ws:
            await ws.receive()
            await ws.send("fail")
            assert await ws.wait_closed() == (1011, "")


async def test_send_and_close_from_another_connection(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        async with client.connect("/ws/relay/") as a, client.connect("/ws/relay/") as b:
            a_id, b_id = await a.receive(), await b.receive()
            await a.send(f"send {b_id} hello")
            assert await b.receive() == "hello"
            assert await a.receive() == "true"
            await a.send(f"send {a_id[:12]}{'0' * 20} lost")
            assert await a.receive() == "false"
            await a.send(f"kick {b_id}")
            assert await b.wait_closed() == (4003, "kicked")
            del a_id


async def test_send_from_outside_any_handler(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        async with client.connect("/ws/1/r/") as ws:
            connection_id = (await ws.receive_json())["connection_id"]
            assert await app.send_message_to_websocket(connection_id, {"detail": "ok"})
            assert await ws.receive() == '{"detail":"ok"}'
            assert await send_message_to_websocket(connection_id, None)
            assert await ws.receive() == "null"
            assert await app.close_websocket_connection(connection_id, 4004, "bye")
            assert await ws.wait_closed() == (4004, "bye")
        assert not await app.send_message_to_websocket(connection_id, "gone")


async def test_groups_fan_out_and_members_leave_on_disconnect(wire: bool) -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, wire=wire) as client:
        async with client.connect("/ws/room/a/") as one, client.connect("/ws/room/a/") as two:
            async with client.connect("/ws/room/b/") as other:
                for ws in (one, two, other):
                    assert await ws.receive() == "joined"
                await one.send("hello a")
                assert await one.receive() == "hello a"
                assert await two.receive() == "hello a"
                await app.send_message_to_group("b", [1, 2])
                assert await other.receive_json() == [1, 2]
        assert app.registry.group_members_count() == 0


async def test_three_workers_sharing_one_memory_broker_chat(wire: bool) -> None:
    broker = MemoryBroker()
    workers = [App(URLS, broker=broker) for _ in range(3)]
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(WebsocketTestClient(app, wire=wire)) for app in workers
        ]
        async with (
            clients[0].connect("/ws/room/chat/") as first,
            clients[1].connect("/ws/room/chat/") as second,
            clients[2].connect("/ws/relay/") as relay,
        ):
            assert await first.receive() == "joined"
            assert await second.receive() == "joined"
            await second.send("from worker 1")
            assert await first.receive() == "from worker 1"
            assert await second.receive() == "from worker 1"
            await relay.receive()
            (first_id,) = [c.connection_id for c in workers[0].registry.connections()]
            await relay.send(f"send {first_id} direct")
            assert await first.receive() == "direct"
            await relay.send(f"kick {first_id}")
            assert await first.wait_closed() == (4003, "kicked")


async def test_lifespan_shutdown_closes_live_connections_with_1001() -> None:
    app = App(URLS)
    client = WebsocketTestClient(app)
    await client.__aenter__()
    async with client.connect("/ws/1/r/") as ws:
        await ws.receive()
        await app.shutdown()
        assert await ws.wait_closed() == (status.WS_1001_GOING_AWAY, "server shutting down")
    await client.__aexit__(None, None, None)


async def test_registry_does_not_leak_over_many_connections() -> None:
    app = App(URLS)
    async with WebsocketTestClient(app, raise_app_exceptions=False) as client:
        for index in range(1000):
            if index % 3 == 0:
                with pytest.raises(WebsocketRejected):
                    async with client.connect("/ws/x/r/"):
                        pass
                continue
            async with client.connect("/ws/room/g/") as ws:
                await ws.receive()
                if index % 3 == 1:
                    await ws.send("anything")
                    await ws.receive()
    assert len(app.registry) == 0
    assert app.registry.group_members_count() == 0


async def test_fallback_gets_http_and_lifespan() -> None:
    seen: list[str] = []

    async def http_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                seen.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        seen.append(scope["type"])

    app = App(URLS, fallback=http_app)
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/1/r/") as ws:
            await ws.receive()
    await app({"type": "http", "path": "/", "method": "GET", "headers": []}, _never, _discard)
    assert seen == ["lifespan.startup", "lifespan.shutdown", "http"]


async def _never() -> dict[str, Any]:
    raise AssertionError("not called")


async def _discard(message: Any) -> None:
    pass


async def test_receive_after_close_raises_websocket_closed(wire: bool) -> None:
    async with WebsocketTestClient(App(URLS), wire=wire) as client:
        async with client.connect("/ws/1/r/") as ws:
            await ws.receive()
            await ws.send("close")
            with pytest.raises(WebsocketClosed, match="4000"):
                await ws.receive()


async def test_a_rejection_reason_quoting_a_long_path_fits_a_close_frame(wire: bool) -> None:
    path = "/ws/" + "é" * 200 + "/"
    async with WebsocketTestClient(App(URLS), wire=wire) as client:
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect(path):
                pass
    reason = rejected.value.reason or ""
    assert rejected.value.code == 1008
    assert reason.startswith("no route for '/ws/éé")
    assert reason.endswith("...")
    assert len(reason.encode("utf-8")) <= 123


async def test_a_send_to_a_worker_that_is_gone_raises_instead_of_vanishing() -> None:
    broker = MemoryBroker()
    sender, stopped = App(URLS, broker=broker), App(URLS, broker=broker)
    async with WebsocketTestClient(sender):
        gone = stopped.worker_id + "0" * 20  # a worker that never attached, or stopped
        with pytest.raises(BrokerError, match="not delivered"):
            await sender.send_message_to_websocket(gone, "hello?")
