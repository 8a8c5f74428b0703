"""Wire-mode fault primitives: an abrupt drop, raw bytes, a client that stops reading."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from panther_ws.protocol import ClientConnection
from panther_ws_testing import WebsocketTestClient
from panther_ws_testing.client import MAX_UNREAD_BYTES

pytestmark = pytest.mark.anyio


def recording_app(seen: list[Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "websocket.disconnect":
                return

    return app


@pytest.mark.parametrize("wire", [False, True], ids=["direct", "wire"])
async def test_drop_ends_the_connection_without_a_close_frame(wire: bool) -> None:
    seen: list[Any] = []
    async with WebsocketTestClient(recording_app(seen), wire=wire, lifespan="off") as client:
        async with client.connect("/") as ws:
            await ws.drop()
            assert ws.close_code == 1006
    assert seen == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


async def test_send_raw_writes_bytes_as_the_socket_would_even_split_anywhere() -> None:
    seen: list[Any] = []
    frames = ClientConnection("testserver", "/")
    frames.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + _accept_key(frames.data_to_send()) + b"\r\n\r\n"
    )
    list(frames.events())
    frames.send("split")
    data = frames.data_to_send()
    async with WebsocketTestClient(recording_app(seen), wire=True, lifespan="off") as client:
        async with client.connect("/") as ws:
            for index in range(len(data)):
                await ws.send_raw(data[index : index + 1])
    assert seen[0] == {"type": "websocket.receive", "text": "split"}


async def test_invalid_raw_bytes_fail_the_connection_with_1002() -> None:
    seen: list[Any] = []
    async with WebsocketTestClient(recording_app(seen), wire=True, lifespan="off") as client:
        async with client.connect("/") as ws:
            await ws.send_raw(b"\x81\x05hello")  # unmasked: a client must mask
            assert await ws.wait_closed() == (1002, ws.close_reason)
    assert seen[-1]["type"] == "websocket.disconnect"
    assert seen[-1]["code"] == 1002


async def test_a_paused_client_blocks_the_apps_sends_at_the_bound() -> None:
    sent = 0

    async def flood(scope: Any, receive: Any, send: Any) -> None:
        nonlocal sent
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                await send({"type": "websocket.send", "bytes": b"x" * 65536})
                sent += 1
        except OSError:  # ClientDisconnected, once the client is gone
            return

    async with WebsocketTestClient(flood, wire=True, lifespan="off") as client:
        async with client.connect("/") as ws:
            ws.pause_reading()
            for _ in range(50):
                await anyio.lowlevel.checkpoint()
            blocked_at = sent
            for _ in range(50):
                await anyio.lowlevel.checkpoint()
            assert sent == blocked_at  # blocked, not growing
            assert blocked_at * 65536 <= MAX_UNREAD_BYTES + 2 * 65536
            ws.resume_reading()
            assert await ws.receive() == b"x" * 65536
            await ws.drop()


@pytest.mark.parametrize("primitive", ["send_raw", "pause_reading", "resume_reading"])
async def test_byte_primitives_need_wire_mode(primitive: str) -> None:
    async with WebsocketTestClient(recording_app([]), lifespan="off") as client:
        async with client.connect("/") as ws:
            call = getattr(ws, primitive)
            with pytest.raises(RuntimeError, match="wire=True"):
                result = call(b"") if primitive == "send_raw" else call()
                if result is not None:
                    await result


def _accept_key(request: bytes) -> bytes:
    import base64
    import hashlib

    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest)
