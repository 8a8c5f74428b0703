"""Every example runs as documented."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from panther_ws_testing import WebsocketRejected, WebsocketTestClient

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_book_example_echoes_and_prints_its_connection_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES / "book"))
    for name in [m for m in sys.modules if m == "app" or m.startswith("app.") or m == "main"]:
        monkeypatch.delitem(sys.modules, name)
    from main import app  # type: ignore[import-not-found]

    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/book/") as ws:
            await ws.send("a book")
            assert await ws.receive() == "a book"
    assert "self.connection_id=" in capsys.readouterr().out


async def test_chat_rooms_and_presence() -> None:
    from examples.chat import app

    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/chat/lobby/", query_params={"name": "alice"}) as alice:
            assert await alice.receive_json() == {"joined": "alice", "here": ["alice"]}
            async with client.connect("/ws/chat/lobby/?name=bob") as bob:
                expected = {"joined": "bob", "here": ["alice", "bob"]}
                assert await alice.receive_json() == expected
                assert await bob.receive_json() == expected
                await bob.send("hi")
                assert await alice.receive_json() == {"from": "bob", "text": "hi"}
                assert await bob.receive_json() == {"from": "bob", "text": "hi"}
                await alice.send("/who")
                assert await alice.receive_json() == {"here": ["alice", "bob"]}
                await bob.send(b"\x00\xff")  # binary once crashed the handler (not JSON-able)
                assert await alice.receive_json() == {"from": "bob", "binary_bytes": 2}
                assert await bob.receive_json() == {"from": "bob", "binary_bytes": 2}
            assert await alice.receive_json() == {"left": "bob"}
        with pytest.raises(WebsocketRejected, match="name= is required"):
            async with client.connect("/ws/chat/lobby/"):
                pass


async def test_http_endpoint_pushes_to_a_connection() -> None:
    from examples.notifications import app

    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/notifications/") as ws:
            connection_id = (await ws.receive_json())["connection_id"]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.post(f"/notify/{connection_id}", json={"new": 1})
                assert response.json() == {"delivered": True}
                gone = connection_id[:12] + "0" * 20  # this worker, no such connection
                missing = await http.post(f"/notify/{gone}", json={})
                assert missing.status_code == 404
            assert await ws.receive_json() == {"new": 1}


async def test_query_token_auth_and_admin_permission() -> None:
    from examples.auth import app

    async with WebsocketTestClient(app) as client:
        async with client.connect("/ws/profile/?token=guest") as ws:
            assert await ws.receive_json() == {"hello": "bob"}
        with pytest.raises(WebsocketRejected) as rejected:
            async with client.connect("/ws/profile/"):
                pass
        assert rejected.value.reason == "authentication failed: missing or unknown token"
        with pytest.raises(WebsocketRejected, match="permission denied: is_admin"):
            async with client.connect("/ws/admin/?token=guest"):
                pass
        async with client.connect("/ws/admin/?token=s3cret") as ws:
            assert await ws.receive_json() == {"hello": "alice"}
