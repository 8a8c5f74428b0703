"""Group sends: one member that crashed, closed or stopped reading never stops the others."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

from panther_ws import App, GenericWebsocket, send_message_to_group
from panther_ws.client import connect
from panther_ws.protocol import ClientConnection
from panther_ws.protocol.events import Message
from panther_ws.server import Server, ServerConfig
from panther_ws_testing import WebsocketTestClient

pytestmark = pytest.mark.anyio


class Member(GenericWebsocket):
    """Joins "room"; "crash" raises; leaving tells the room, as examples/chat.py does."""

    async def connect(self) -> None:
        await self.accept()
        await self.join_group("room")
        await self.send("joined")

    async def receive(self, data: str | bytes) -> None:
        if data == "crash":
            raise RuntimeError("boom")
        if data == "bye":
            await self.close()

    async def disconnect(self, code: int, reason: str) -> None:
        await send_message_to_group("room", f"left with {code}")


async def test_a_member_that_crashed_does_not_stop_its_own_goodbye_to_the_group() -> None:
    app = App({"ws/member/": Member})
    with pytest.raises(RuntimeError, match="boom"):  # the crash itself is still surfaced
        async with WebsocketTestClient(app) as client:
            async with client.connect("/ws/member/") as crashing:
                assert await crashing.receive() == "joined"  # first member: sent to first
                async with client.connect("/ws/member/") as second:
                    async with client.connect("/ws/member/") as third:
                        assert await second.receive() == "joined"
                        assert await third.receive() == "joined"
                        await crashing.send("crash")
                        assert await second.receive() == "left with 1011"
                        assert await third.receive() == "left with 1011"
    assert app.registry.group_members_count() == 0


async def test_on_a_real_server_a_crashed_member_does_not_stop_its_goodbye() -> None:
    app = App({"ws/member/": Member})
    server = Server(app, ServerConfig(port=0))
    async with anyio.create_task_group() as task_group:
        port = await task_group.start(server.serve)
        url = f"ws://127.0.0.1:{port}/ws/member/"
        async with connect(url) as crashing, connect(url) as second, connect(url) as third:
            for ws in (crashing, second, third):
                assert await ws.receive() == "joined"
            await crashing.send("crash")
            assert await crashing.wait_closed() == (1011, "")
            assert await second.receive() == "left with 1011"
            assert await third.receive() == "left with 1011"
        server.shutdown()


async def test_a_member_that_closes_is_skipped_by_the_group_send_it_causes() -> None:
    app = App({"ws/member/": Member})
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/member/") as leaving, client.connect("/ws/member/") as other:
            assert await leaving.receive() == "joined"
            assert await other.receive() == "joined"
            await leaving.send("bye")
            assert await leaving.wait_closed() == (1000, "")
            assert await other.receive() == "left with 1000"


class Quiet(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()
        await self.join_group("room")
        await self.send("joined")


def _stalled_member(port: int) -> socket.socket:
    """A member on a real socket that joins the group, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    client = ClientConnection("127.0.0.1", "/ws/quiet/", permessage_deflate=False)
    sock.sendall(client.data_to_send())
    while Message("joined") not in list(client.events()):
        client.receive_data(sock.recv(65536))
    return sock


async def test_a_member_that_stopped_reading_is_dropped_and_the_others_keep_receiving() -> None:
    app = App({"ws/quiet/": Quiet}, group_send_timeout=0.5)
    server = Server(app, ServerConfig(port=0))
    count, payload = 400, b"x" * 65536  # 26 MB: more than any socket buffer holds
    received: dict[int, list[bytes]] = {0: [], 1: []}

    async def read(index: int, ws: Any) -> None:
        while len(received[index]) < count:
            received[index].append(await ws.receive_bytes())

    async with anyio.create_task_group() as task_group:
        port = await task_group.start(server.serve)
        url = f"ws://127.0.0.1:{port}/ws/quiet/"
        async with connect(url) as first, connect(url) as second:
            assert await first.receive() == "joined"
            assert await second.receive() == "joined"
            stalled = await anyio.to_thread.run_sync(_stalled_member, port)
            try:
                with anyio.fail_after(30):  # before the fix: blocked here for good
                    async with anyio.create_task_group() as readers:
                        readers.start_soon(read, 0, first)
                        readers.start_soon(read, 1, second)
                        for _ in range(count):
                            await app.send_message_to_group("room", payload)
            finally:
                stalled.close()
        server.shutdown()
    assert received[0] == received[1] == [payload] * count
    assert app.slow_members_dropped == 1
    assert len(app.registry.members("room")) == 0  # the readers left; the stalled one was dropped
