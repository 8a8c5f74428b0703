"""The built-in demo app, in memory: echo, the chat room's group and private messages."""

from __future__ import annotations

import pytest

from panther_ws.demo import app
from panther_ws_testing import WebsocketRejected, WebsocketTestClient

pytestmark = pytest.mark.anyio


async def test_echo_answers_text_and_bytes() -> None:
    async with WebsocketTestClient(app) as client, client.connect("/ws/echo/") as ws:
        await ws.send("hi")
        assert await ws.receive() == "hi"
        await ws.send(b"\x00\x01")
        assert await ws.receive() == b"\x00\x01"


async def test_the_chat_room_is_a_group_with_private_messages_and_presence() -> None:
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/chat/lobby/", query_params={"name": "ann"}) as ann:
            welcome = await ann.receive_json()
            assert welcome["type"] == "welcome"
            assert (await ann.receive_json())["here"] == [
                {"name": "ann", "connection_id": welcome["connection_id"]}
            ]
            async with client.connect("/ws/chat/lobby/", query_params={"name": "bob"}) as bob:
                await bob.receive_json()  # bob's welcome
                joined = await ann.receive_json()
                assert joined["type"] == "joined"
                assert [member["name"] for member in joined["here"]] == ["ann", "bob"]
                await bob.receive_json()  # bob sees his own join too
                await bob.send("hello room")
                for ws in (ann, bob):
                    assert await ws.receive_json() == {
                        "type": "message",
                        "from": "bob",
                        "text": "hello room",
                    }
                await bob.send({"to": welcome["connection_id"], "text": "psst"})
                assert await ann.receive_json() == {
                    "type": "private",
                    "from": "bob",
                    "text": "psst",
                }
                await bob.receive_nothing(timeout=0.05)
                await bob.send(b"\xff" * 3)  # binary is reported, never a crash
                assert (await ann.receive_json())["size"] == 3
            left = await ann.receive_json()
            assert (left["type"], left["name"]) == ("left", "bob")


async def test_a_private_message_to_nobody_is_answered_with_an_error() -> None:
    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/chat/r/", query_params={"name": "ann"}) as ann:
            await ann.receive_json()
            await ann.receive_json()
            gone = app.worker_id + "0" * 20  # this worker's, but no live connection has it
            await ann.send({"to": gone, "text": "anyone?"})
            assert await ann.receive_json() == {"type": "error", "text": f"nobody has id {gone}"}


async def test_the_chat_needs_a_name() -> None:
    async with WebsocketTestClient(app) as client:
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/ws/chat/lobby/"):
                pass
    assert (rejected.value.code, rejected.value.reason) == (1008, "a ?name= is required")


async def test_the_page_is_served_at_the_root() -> None:
    async with WebsocketTestClient(app) as client:
        response = await client.get("/")
        assert response.status_code == 200
        assert "panther-ws demo" in response.text
        assert (await client.get("/nothing")).status_code == 404
