"""What the network client makes of the URL it is given."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from panther_ws.client import connect
from panther_ws.network.session import WebsocketClosed

pytestmark = pytest.mark.anyio


async def test_the_host_header_of_an_ipv6_literal_keeps_its_brackets() -> None:
    received: list[bytes] = []

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive()
            received.append(request)

    listener = await anyio.create_tcp_listener(local_host="::1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, serve)
        with pytest.raises(WebsocketClosed), anyio.fail_after(5):  # no answer: closed
            async with connect(f"ws://[::1]:{port}/"):
                pass
        task_group.cancel_scope.cancel()
    assert f"\r\nhost: [::1]:{port}\r\n".encode() in received[0].lower()
