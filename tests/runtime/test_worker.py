"""The Worker's public API: ids, the registry, groups across workers, the module functions.

Members are real ``GenericWebsocket`` instances whose ASGI ``send`` records what the server
would put on the wire; the apps run through the test client on asyncio and trio.
"""

from __future__ import annotations

import multiprocessing
import re
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from panther_ws import (
    App,
    GenericWebsocket,
    close_websocket_connection,
    send_message_to_group,
    send_message_to_websocket,
)
from panther_ws.brokers import MemoryBroker, RedisBroker
from panther_ws.hosting.lifespan import LifespanError, LifespanRunner
from panther_ws.worker import Worker, current_worker
from panther_ws_testing import WebsocketTestClient

pytestmark = pytest.mark.anyio


@dataclass
class Host:
    worker: Worker


class Recorded(GenericWebsocket):
    """A handler outside any server: its ASGI messages land in ``sent``."""

    def __init__(self, worker: Worker) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__({"type": "websocket", "path": "/t/"}, self._record, Host(worker), {})

    async def _record(self, message: Any) -> None:
        self.sent.append(dict(message))

    def texts(self) -> list[str]:
        return [message["text"] for message in self.sent if "text" in message]


async def accepted(worker: Worker) -> Recorded:
    connection = Recorded(worker)
    await connection.accept()
    return connection


async def test_register_gives_unique_ids_that_route_back_to_the_worker() -> None:
    worker = Worker()
    ids = {await _accepted_id(worker) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", id_) for id_ in ids)
    assert all(id_.startswith(worker.worker_id) for id_ in ids)
    assert len(worker.registry) == 1000


async def _accepted_id(worker: Worker) -> str:
    connection = await accepted(worker)
    assert connection.connection_id is not None
    return connection.connection_id


FORKED: list[Worker] = []


def test_a_forked_worker_gets_a_new_id() -> None:
    """As under ``gunicorn --preload``: built in the parent, serving in the child."""
    FORKED[:] = [Worker()]
    parent_id = FORKED[0].worker_id
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child_id = pool.apply(_forked_worker_id)
    assert child_id != parent_id
    assert FORKED[0].worker_id == parent_id


def _forked_worker_id() -> str:
    return FORKED[0].worker_id


async def test_a_group_send_reaches_members_on_every_worker_sharing_a_broker() -> None:
    broker = MemoryBroker()
    first, second = Worker(broker), Worker(broker)
    await first.ensure_attached()
    await second.ensure_attached()
    here, there = await accepted(first), await accepted(second)
    await here.join_group("room")
    await there.join_group("room")
    await first.send_message_to_group("room", {"detail": "ok"})
    assert here.texts() == there.texts() == ['{"detail":"ok"}']


async def test_a_forgotten_connection_leaves_its_groups_on_the_broker() -> None:
    broker = MemoryBroker()
    holder, sender = Worker(broker), Worker(broker)
    await holder.ensure_attached()
    await sender.ensure_attached()
    member = await accepted(holder)
    await member.join_group("room")
    await holder.forget(member)
    await sender.send_message_to_group("room", "anyone?")
    assert member.texts() == []
    assert len(holder.registry) == 0
    assert holder.registry.group_members_count() == 0


async def test_joining_before_accept_or_after_the_end_raises_instead_of_leaking() -> None:
    worker = Worker()
    fresh = Recorded(worker)
    with pytest.raises(RuntimeError, match=r"call accept\(\) first"):
        await fresh.join_group("room")
    ended = await accepted(worker)
    await worker.forget(ended)
    with pytest.raises(RuntimeError, match="not after the connection ended"):
        await ended.join_group("room")
    assert worker.registry.group_members_count() == 0


class Kept(GenericWebsocket):
    """Remembers itself, so the test can act on it after its connection ended."""

    instances: list[Kept] = []

    async def connect(self) -> None:
        await self.accept()
        Kept.instances.append(self)
        await self.send("hi")


async def test_a_handler_that_joins_after_its_connection_ended_is_refused() -> None:
    app = App({"ws/": Kept})
    Kept.instances.clear()
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/") as ws:
            assert await ws.receive() == "hi"
    with pytest.raises(RuntimeError, match="not after the connection ended"):
        await Kept.instances[0].join_group("room")
    assert app.registry.group_members_count() == 0


async def test_the_module_functions_act_on_the_worker_they_run_in() -> None:
    mine = Worker()
    connection = await accepted(mine)
    assert connection.connection_id is not None
    Worker()  # a later worker is the default outside any handler
    token = current_worker.set(mine)
    try:
        assert await send_message_to_websocket(connection.connection_id, "to me")
        assert await close_websocket_connection(connection.connection_id, 4000, "bye")
    finally:
        current_worker.reset(token)
    assert connection.texts() == ["to me"]
    assert connection.sent[-1] == {"type": "websocket.close", "code": 4000, "reason": "bye"}


async def test_outside_any_handler_the_module_functions_act_on_the_latest_worker() -> None:
    Worker()
    latest = Worker()
    member = await accepted(latest)
    await member.join_group("room")
    await send_message_to_group("room", b"\x00")
    assert member.sent[-1] == {"type": "websocket.send", "bytes": b"\x00"}


async def test_a_local_send_to_an_unknown_connection_returns_false() -> None:
    worker = Worker()
    gone = worker.worker_id + "0" * 20
    assert await worker.send_message_to_websocket(gone, "hello?") is False
    assert await worker.close_websocket_connection(gone) is False


async def test_close_all_closes_every_live_connection() -> None:
    worker = Worker()
    connections = [await accepted(worker) for _ in range(3)]
    await worker.close_all(1001, "going")
    assert all(
        c.sent[-1] == {"type": "websocket.close", "code": 1001, "reason": "going"}
        for c in connections
    )


async def test_a_broker_that_needs_a_listener_is_not_attached_behind_the_lifespans_back() -> None:
    worker = Worker(RedisBroker("redis://127.0.0.1:1/0"))
    with pytest.raises(RuntimeError, match="needs the ASGI lifespan"):
        await worker.ensure_attached()


# -- the App's lifespan relay to its fallback --------------------------------------------------


def fallback_lifespan(answer: str) -> Any:
    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        if answer == "raise":
            raise RuntimeError("no lifespan here")
        scope["state"]["db"] = "ready"
        await send({"type": f"lifespan.startup.{answer}", "message": "db down"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    return fallback


async def test_the_fallbacks_lifespan_shares_the_servers_state() -> None:
    runner = LifespanRunner(App({"ws/": Kept}, fallback=fallback_lifespan("complete")))
    async with anyio.create_task_group() as task_group:
        await runner.startup(task_group)
        assert runner.state == {"db": "ready"}
        await runner.shutdown()


async def test_a_fallback_whose_lifespan_raises_does_not_stop_the_app() -> None:
    app = App({"ws/": Kept}, fallback=fallback_lifespan("raise"))
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/") as ws:
            assert await ws.receive() == "hi"


async def test_a_fallback_that_fails_startup_fails_the_apps_startup_with_its_message() -> None:
    runner = LifespanRunner(App({"ws/": Kept}, fallback=fallback_lifespan("failed")))
    async with anyio.create_task_group() as task_group:
        with pytest.raises(LifespanError, match="db down"):
            await runner.startup(task_group)


async def health(scope: Any, receive: Any, send: Any) -> None:
    """An HTTP app that never looks at the scope type, as a fallback often is."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_a_fallback_that_answers_the_lifespan_with_http_reads_as_no_lifespan() -> None:
    runner = LifespanRunner(App({"ws/": Kept}, fallback=health))
    async with anyio.create_task_group() as task_group:
        await runner.startup(task_group)
        assert runner.supported  # the App's own lifespan started
        await runner.shutdown()
