"""The app gunicorn runs in the multi-process tests; the broker comes from the environment."""

from __future__ import annotations

import os

import orjson

from panther_ws import (
    App,
    GenericWebsocket,
    close_websocket_connection,
    send_message_to_group,
    send_message_to_websocket,
)
from panther_ws.brokers import ManagerBroker, RedisBroker

if os.environ.get("PANTHER_WS_TEST_BROKER") == "redis":
    broker: RedisBroker | ManagerBroker = RedisBroker(os.environ["PANTHER_WS_TEST_REDIS_URL"])
else:
    broker = ManagerBroker()  # with --preload: created once, in the gunicorn master


class Probe(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()
        await self.join_group("everyone")
        await self.send({"pid": os.getpid(), "connection_id": self.connection_id})

    async def receive(self, data: str | bytes) -> None:
        command = orjson.loads(data)
        if command["op"] == "send":
            await send_message_to_websocket(command["to"], command["data"])
        elif command["op"] == "close":
            await close_websocket_connection(command["to"], 4005, "closed by another worker")
        elif command["op"] == "group":
            await send_message_to_group("everyone", command["data"])


app = App({"ws/probe/": Probe}, broker=broker)
