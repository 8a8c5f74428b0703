"""The built-in demo: ``panther-ws demo`` serves it, so a newcomer sees the library work.

Open http://127.0.0.1:8000/ in a browser (in two tabs, to see the chat): the page talks to
two endpoints of an ordinary :class:`~panther_ws.App`,

- ``/ws/echo/`` answers every message with itself;
- ``/ws/chat/<room>/?name=...`` is a chat room: members are a group
  (``send_message_to_group``), and a message ``{"to": connection_id, "text": ...}`` reaches
  one member privately (``send_message_to_websocket``).

Everything else is the HTML page, served by the App's ``fallback`` HTTP app.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from importlib.resources import files
from typing import Any

import orjson

from panther_ws import (
    App,
    GenericWebsocket,
    send_message_to_group,
    send_message_to_websocket,
    status,
)

PAGE = files(__package__).joinpath("index.html").read_bytes()

# room -> connection_id -> name, on this worker (a shared store would serve many workers)
_PRESENCE: dict[str, dict[str, str]] = {}


class EchoWebsocket(GenericWebsocket):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, data: str | bytes) -> None:
        await self.send(data)


class ChatWebsocket(GenericWebsocket):
    async def connect(self, room: str) -> None:
        name = self.query_params.get("name", "").strip()
        if not name:
            await self.close(status.WS_1008_POLICY_VIOLATION, "a ?name= is required")
            return
        await self.accept()
        self.room, self.name = room, name[:40]
        members = _PRESENCE.setdefault(room, {})
        members[self.connection_id] = self.name  # type: ignore[index]
        await self.join_group(self.group)
        await self.send({"type": "welcome", "connection_id": self.connection_id, "room": room})
        await send_message_to_group(
            self.group, {"type": "joined", "name": self.name, "here": self.here()}
        )

    @property
    def group(self) -> str:
        return f"chat:{self.room}"

    def here(self) -> list[dict[str, str]]:
        members = _PRESENCE.get(self.room, {})
        return [{"name": name, "connection_id": cid} for cid, name in members.items()]

    async def receive(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await send_message_to_group(
                self.group, {"type": "binary", "from": self.name, "size": len(data)}
            )
            return
        private = _private_message(data)
        if private is not None:
            target, text = private
            message = {"type": "private", "from": self.name, "text": text}
            if not await send_message_to_websocket(target, message):
                await self.send({"type": "error", "text": f"nobody has id {target}"})
            return
        await send_message_to_group(
            self.group, {"type": "message", "from": self.name, "text": data}
        )

    async def disconnect(self, code: int, reason: str) -> None:
        _PRESENCE.get(self.room, {}).pop(self.connection_id, None)  # type: ignore[arg-type]
        await send_message_to_group(
            self.group, {"type": "left", "name": self.name, "here": self.here()}
        )


def _private_message(data: str) -> tuple[str, str] | None:
    """``{"to": connection_id, "text": ...}`` as (id, text); anything else is for the room."""
    if not data.startswith("{"):
        return None
    try:
        parsed: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("to"), str):
        return None
    return parsed["to"], str(parsed.get("text", ""))


async def page(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The demo page for ``GET /``; 404 for anything else."""
    if scope["type"] != "http":
        return  # lifespan: nothing to start
    found = scope["path"] == "/"
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8" if found else b"text/plain"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": PAGE if found else b"Not Found"})


app = App({"ws/echo/": EchoWebsocket, "ws/chat/<room>/": ChatWebsocket}, fallback=page)
