"""RedisBroker against a real redis-server: Apps as workers, and Redis restarting mid-test."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from panther_ws import App, GenericWebsocket, send_message_to_group
from panther_ws.brokers import BrokerError
from panther_ws.brokers.redis import RedisBroker
from panther_ws_testing import WebsocketTestClient
from panther_ws_testing._redis import RedisServer

pytestmark = pytest.mark.anyio


class Member(GenericWebsocket):
    async def connect(self, group: str) -> None:
        await self.accept()
        await self.join_group(group)
        await self.send(self.connection_id)

    async def receive(self, data: str | bytes) -> None:
        await send_message_to_group(self.path_variables["group"], data)


URLS = {"ws/<group>/": Member}


async def _workers(
    stack: AsyncExitStack, url: str, count: int
) -> list[tuple[App, WebsocketTestClient]]:
    workers = []
    for _ in range(count):
        app = App(URLS, broker=RedisBroker(url))
        workers.append((app, await stack.enter_async_context(WebsocketTestClient(app))))
    return workers


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_two_apps_on_one_redis_behave_as_two_workers(
    anyio_backend: str, redis_url: str
) -> None:
    async with AsyncExitStack() as stack:
        (app_a, client_a), (app_b, client_b) = await _workers(stack, redis_url, 2)
        async with client_a.connect("/ws/g1/") as on_a, client_b.connect("/ws/g1/") as on_b:
            id_a, id_b = await on_a.receive(), await on_b.receive()
            assert isinstance(id_b, str)
            assert await app_a.send_message_to_websocket(id_b, b"\x00bytes")
            assert await on_b.receive() == b"\x00bytes"
            assert await app_b.send_message_to_websocket(str(id_a), {"json": [1, None]})
            assert await on_a.receive_json() == {"json": [1, None]}
            await on_a.send("to the group")
            assert await on_a.receive() == "to the group"
            assert await on_b.receive() == "to the group"
            assert await app_a.close_websocket_connection(id_b, 4009, "from the other worker")
            assert await on_b.wait_closed() == (4009, "from the other worker")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_restart_keeps_connections_and_delivery_resumes(anyio_backend: str) -> None:
    server = RedisServer()
    server.start()
    try:
        async with AsyncExitStack() as stack:
            (app_a, client_a), (_, client_b) = await _workers(stack, server.url, 2)
            async with client_a.connect("/ws/g/") as on_a, client_b.connect("/ws/g/") as on_b:
                await on_a.receive()
                id_b = str(await on_b.receive())
                server.stop()
                with pytest.raises(BrokerError, match="could not publish to Redis"):
                    await app_a.send_message_to_websocket(id_b, "during the outage")
                server.start()
                delivered = False
                with anyio.fail_after(15):
                    while not delivered:
                        try:
                            await app_a.send_message_to_websocket(id_b, "after the restart")
                        except BrokerError:
                            await anyio.sleep(0.05)
                            continue
                        try:
                            assert await on_b.receive(timeout=0.5) == "after the restart"
                            delivered = True
                        except TimeoutError:
                            pass  # the listener was still reconnecting: published into the void
                await on_a.send("group after restart")
                assert await on_b.receive(timeout=5) == "group after restart"
    finally:
        server.close()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_error(anyio_backend: str, redis_url: str) -> None:
    with pytest.raises(RuntimeError, match="needs the asyncio backend"):
        async with RedisBroker(redis_url).attach("0" * 12, _ignore):
            pass


async def _ignore(delivery: object) -> None:
    pass
