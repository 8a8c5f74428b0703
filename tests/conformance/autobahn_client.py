"""Drives the Autobahn fuzzingserver with panther_ws.client: echo every case, then report.

python tests/conformance/autobahn_client.py ws://127.0.0.1:9001 [agent] [backend]
"""

from __future__ import annotations

import sys

import anyio

from panther_ws.client import connect
from panther_ws.network.session import WebsocketClosed, WebsocketError

MAX_SIZE = 32 * 1024 * 1024


async def run(base: str, agent: str) -> None:
    async with connect(f"{base}/getCaseCount") as ws:
        count = int(await ws.receive_text())
    for case in range(1, count + 1):
        try:
            async with connect(
                f"{base}/runCase?case={case}&agent={agent}", max_message_size=MAX_SIZE, timeout=60
            ) as ws:
                while True:
                    await ws.send(await ws.receive())
        except (WebsocketClosed, WebsocketError, OSError):
            pass
    try:
        async with connect(f"{base}/updateReports?agent={agent}&shutdownOnComplete=true") as ws:
            await ws.wait_closed(timeout=30)
    except (WebsocketError, OSError):
        pass  # the fuzzingserver often exits before finishing this handshake


if __name__ == "__main__":
    base_url = sys.argv[1]
    agent_name = sys.argv[2] if len(sys.argv) > 2 else "panther_ws"
    backend = sys.argv[3] if len(sys.argv) > 3 else "asyncio"
    anyio.run(run, base_url, agent_name, backend=backend)
