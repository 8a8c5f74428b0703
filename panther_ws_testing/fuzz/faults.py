"""Wire-mode faults: bytes split at any byte, pings between fragments, drops, a client not reading.

They go through the session's fault primitives (``send_raw``, ``drop``, ``pause_reading``),
so the printed reproduction does exactly what the machine did, bytes included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from panther_ws_testing import WebsocketClosed
from panther_ws_testing.fuzz.conversation import Client, Conversation


@dataclass(frozen=True)
class SendRaw:
    """``message``'s frames written in ``pieces``; with ``then_drop``, only their start, and
    then the connection drops in the middle of the message (the app sees 1006)."""

    client: Client
    message: Any
    pieces: tuple[bytes, ...]
    then_drop: bool = False

    async def play(self, conversation: Conversation) -> bool:
        client, session = self.client, self.client.session
        if session is None or not client.is_open:
            return False
        name = client.name
        lines = [f"await {name}.send_raw({piece!r})" for piece in self.pieces]
        if self.then_drop:
            lines.append(f"await {name}.drop()  # in the middle of a message: the app sees 1006")
        conversation.script.step(*lines)
        try:
            for piece in self.pieces:
                await session.send_raw(piece)
        except WebsocketClosed:
            await conversation.app_closed(client)
            return True
        if self.then_drop:
            client.left = True
            await session.drop()
            await conversation.check_at_rest_if_idle()
        elif client.endpoint.replies:
            client.unanswered += 1
        return True


@dataclass(frozen=True)
class PauseReading:
    """The client stops reading: the app's sends must wait once a buffer's worth is unread."""

    client: Client

    async def play(self, conversation: Conversation) -> bool:
        client, session = self.client, self.client.session
        if session is None or not client.is_open:
            return False
        conversation.script.step(f"{client.name}.pause_reading()")
        session.pause_reading()
        client.paused = True
        return True


@dataclass(frozen=True)
class ResumeReading:
    client: Client

    async def play(self, conversation: Conversation) -> bool:
        client, session = self.client, self.client.session
        if session is None or not client.is_open:
            return False
        conversation.script.step(f"{client.name}.resume_reading()")
        session.resume_reading()
        client.paused = False
        return True
