"""Apps with one planted bug each, and correct apps the machine must leave alone.

Each buggy app is correct but for the line marked ``# BUG``, so what the machine finds is
that bug and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio.lowlevel
import orjson
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from panther_ws import App, GenericWebsocket, send_message_to_group
from panther_ws.brokers import Broker
from panther_ws_testing import WebsocketTestSession
from panther_ws_testing.fuzz import settle

# -- a crash on one message shape -------------------------------------------------------------


class OrdersWebsocket(GenericWebsocket):
    """Answers every JSON value; a list is answered with its first item."""

    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        order = orjson.loads(data)
        if isinstance(order, list):
            await self.send({"first": order[0]})  # BUG: IndexError for []
        else:
            await self.send({"echo": order})


crashing_app = App({"ws/orders/": OrdersWebsocket})


# -- a group membership leaked when the client drops abruptly ----------------------------------

ROOMS: defaultdict[str, set[str]] = defaultdict(set)  # room -> connection ids, the app's own


class RoomWebsocket(GenericWebsocket):
    async def connect(self, room: str) -> None:
        await self.accept()
        self.room = room
        ROOMS[room].add(self.connection_id)  # type: ignore[arg-type]
        await self.join_group(f"room:{room}")

    async def receive(self, data: str | bytes) -> None:
        await send_message_to_group(f"room:{self.room}", data)

    async def disconnect(self, code: int, reason: str) -> None:
        if code != 1006:  # BUG: a client that drops stays a member for ever
            ROOMS[self.room].discard(self.connection_id)


leaky_app = App({"ws/rooms/<room>/": RoomWebsocket})


def empty_rooms() -> None:
    ROOMS.clear()


def rooms_are_empty() -> None:
    """At rest, every room is empty: nobody is connected."""
    members = {room: ids for room, ids in ROOMS.items() if ids}
    assert not members, f"rooms still have members after every client left: {members}"


# -- a send after close (a raw ASGI app) ------------------------------------------------------


async def goodbye_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes text; ``bye`` closes the connection."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "bye":
            await send({"type": "websocket.close", "code": 1000})
            await send({"type": "websocket.send", "text": "see you"})  # BUG: after close
            return
        await send({"type": "websocket.send", "text": text or ""})


# -- a handler that never answers one message kind (Starlette) ---------------------------------


async def echo_but_binary(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    try:
        async for message in _messages(websocket):
            if isinstance(message, str):
                await websocket.send_text(message)
            # BUG: binary messages are never answered
    except WebSocketDisconnect:
        pass  # the client left while we answered


async def _messages(websocket: StarletteWebSocket) -> AsyncIterator[str | bytes]:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text: str | None = message.get("text")
        yield text if text is not None else bytes(message["bytes"])


silent_app = Starlette(routes=[WebSocketRoute("/echo", echo_but_binary)])


# -- a cross-worker send to a departed connection that raises ----------------------------------

PEERS: dict[str, str] = {}  # connection_id -> name, shared by the workers (as Redis would be)
ONLINE: dict[str, str] = {}  # name -> connection_id, kept right


class RelayWebsocket(GenericWebsocket):
    """Greets the peers on *other* workers when it joins; messages go to the whole group.

    The greeting runs in the new peer's own connect(), after every earlier step finished
    (a drop returns once the app has handled it), so the bug fires in the same place on
    every replay: a fuzzer's shortest conversation must not depend on how tasks interleave.
    """

    async def connect(self) -> None:
        await self.accept()
        self.name = f"peer-{self.connection_id[-6:]}"  # type: ignore[index]
        for connection_id, name in list(PEERS.items()):
            if not connection_id.startswith(self.app.worker_id):
                ONLINE[name]  # BUG: KeyError for a peer that dropped
                await self.app.send_message_to_websocket(connection_id, f"{self.name} joined")
        PEERS[self.connection_id] = ONLINE[self.name] = self.name  # type: ignore[index]
        await self.join_group("relay")

    async def receive(self, data: str | bytes) -> None:
        await send_message_to_group("relay", data)

    async def disconnect(self, code: int, reason: str) -> None:
        ONLINE.pop(self.name, None)
        if code != 1006:  # BUG: a dropped peer is never removed from PEERS
            PEERS.pop(self.connection_id, None)  # type: ignore[arg-type]


def forget_peers() -> None:
    PEERS.clear()
    ONLINE.clear()


def make_relay(broker: Broker) -> App:
    return App({"ws/relay/": RelayWebsocket}, broker=broker)


# -- a message whose handling outlasts the step that sent it ---------------------------------

NOTES: list[str] = []  # what the notes app has saved, as a database would


async def notes_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Saves every text as a note (after a round trip); a new client gets the latest note.

    Whether a note is saved before the next client arrives depends on how long the app takes,
    so the test it is printed as must let the app finish before another client's step
    (``await settle()``), or it would pass or fail by the scheduler's choice.
    """
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    if NOTES:
        await send({"type": "websocket.send", "text": NOTES[len(NOTES)]})  # BUG: off by one
    while (message := await receive())["type"] != "websocket.disconnect":
        for _ in range(3):
            await anyio.lowlevel.checkpoint()  # the database round trip
        NOTES.append(message.get("text") or "")


def forget_notes() -> None:
    NOTES.clear()


# -- correct apps ----------------------------------------------------------------------------


class BroadcastWebsocket(GenericWebsocket):
    async def connect(self, room: str) -> None:
        await self.accept()
        self.room = room
        await self.join_group(room)

    async def receive(self, data: str | bytes) -> None:
        await send_message_to_group(self.room, data)


def make_broadcast(broker: Broker) -> App:
    return App({"ws/<room>/": BroadcastWebsocket}, broker=broker)


async def starlette_echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept(subprotocol=(websocket.scope["subprotocols"] or [None])[0])
    try:
        async for message in _messages(websocket):
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)
    except WebSocketDisconnect:
        pass  # the client left while we answered


starlette_app = Starlette(routes=[WebSocketRoute("/ws/{name}", starlette_echo)])

fastapi_app = FastAPI()


@fastapi_app.websocket("/items/{item_id}")
async def item_feed(websocket: WebSocket, item_id: int) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"item": item_id, "got": text})
    except WebSocketDisconnect:
        pass


# -- apps for the checks themselves ---------------------------------------------------------


async def kicking_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes text; ``kick`` closes with 4001."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] != "websocket.disconnect":
        if message.get("text") == "kick":
            await send({"type": "websocket.close", "code": 4001, "reason": "kicked"})
            return
        else:
            await send({"type": "websocket.send", "text": message.get("text") or ""})


async def picky_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raises ValueError for binary messages, echoes text."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] != "websocket.disconnect":
        if message.get("text") is None:
            raise ValueError("binary messages are not supported")
        await send({"type": "websocket.send", "text": message["text"]})


def no_secrets(sessions: Sequence[WebsocketTestSession]) -> None:
    """No session ever received the word 'secret'."""
    for session in sessions:
        for who, message in session.transcript:
            assert not (who == "app" and "secret" in str(message.get("text"))), message


async def whisper(session: WebsocketTestSession, word: str) -> None:
    """A user rule, wrong on purpose: it expects an echo in lower case."""
    await session.send(word)
    assert await session.receive() == word.lower()


# -- apps for the wire faults ------------------------------------------------------------------

DISCONNECTS: list[int] = []  # the code of every disconnect the recorder saw


async def recorder_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes every message, and records the code of the disconnect that ends it."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] != "websocket.disconnect":
        answer = {"type": "websocket.send", "text": message.get("text")}
        await send({**answer, "bytes": message.get("bytes")})
    DISCONNECTS.append(message["code"])


FLOOD_CHUNK = 64 * 1024
FLOOD_CHUNKS = 128  # 8 MiB in all: twice what a client's buffer holds
FLOODED: list[int] = []  # bytes the flood app has sent, one entry per chunk


async def flood_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers any message with 8 MiB, as fast as the client lets it."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    if (await receive())["type"] == "websocket.disconnect":
        return
    for _ in range(FLOOD_CHUNKS):
        await send({"type": "websocket.send", "bytes": b"x" * FLOOD_CHUNK})
        FLOODED.append(FLOOD_CHUNK)
    await receive()


async def flooded_so_far(session: WebsocketTestSession) -> None:
    """A user rule: once the app can go no further, how much has it sent?"""
    await settle()
    FLOODED_SEEN.append(sum(FLOODED))


FLOODED_SEEN: list[int] = []
