"""Chat rooms: the room is a path variable, members are a group, and "who is here" is a list.

Run with ``uvicorn examples.chat:app``; connect to ``/ws/chat/<room>/?name=alice``.
"""

from __future__ import annotations

from collections import defaultdict

from panther_ws import App, GenericWebsocket, send_message_to_group, status

# room -> connection_id -> name; per worker (use a shared store for many workers)
PRESENCE: defaultdict[str, dict[str, str]] = defaultdict(dict)


class ChatWebsocket(GenericWebsocket):
    async def connect(self, room: str) -> None:
        name = self.query_params.get("name")
        if not name:
            await self.close(status.WS_1008_POLICY_VIOLATION, "a ?name= is required")
            return
        await self.accept()
        self.room, self.name = room, name
        PRESENCE[room][self.connection_id] = name  # type: ignore[index]
        await self.join_group(f"chat:{room}")
        await send_message_to_group(f"chat:{room}", {"joined": name, "here": self.who_is_here()})

    async def receive(self, data: str | bytes) -> None:
        if isinstance(data, bytes):  # a chat is text: tell the room what arrived, not the bytes
            await send_message_to_group(
                f"chat:{self.room}", {"from": self.name, "binary_bytes": len(data)}
            )
            return
        if data == "/who":
            await self.send({"here": self.who_is_here()})
            return
        await send_message_to_group(f"chat:{self.room}", {"from": self.name, "text": data})

    async def disconnect(self, code: int, reason: str) -> None:
        PRESENCE[self.room].pop(self.connection_id, None)  # type: ignore[arg-type]
        await send_message_to_group(f"chat:{self.room}", {"left": self.name})

    def who_is_here(self) -> list[str]:
        return sorted(PRESENCE[self.room].values())


app = App({"ws/chat/<room>/": ChatWebsocket})
