"""``WebsocketClient``: a drop-in for ``panther.test.WebsocketClient`` that never hangs.

Panther's client answers every ``receive()`` with ``websocket.connect``, so an app that
waits for a message loops or hangs. This one gives the app its connect, then a disconnect,
and returns the ASGI messages the app sent, as Panther's does. The app runs as the test
client's apps do (:mod:`panther_ws_testing._apps`): one that ignores its cancellation is
abandoned after ``timeout``, and ``KeyboardInterrupt`` from it fails only the test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import anyio

from panther_ws.hosting.primitives import Primitives
from panther_ws_testing._apps import AppTask, AppTasks


class WebsocketClient:
    def __init__(self, app: Any, *, timeout: float = 5.0) -> None:
        self.app = app
        self.timeout = timeout
        self.responses: list[dict[str, Any]] = []

    def connect(
        self,
        path: str,
        headers: Mapping[str, Any] | None = None,
        query_params: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Run one connection to its end; returns every message the app sent."""
        return anyio.run(self._connect, path, headers, query_params)

    async def _connect(
        self, path: str, headers: Mapping[str, Any] | None, query_params: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        if not path.startswith("/"):
            path = f"/{path}"
        query = "&".join(f"{key}={value}" for key, value in (query_params or {}).items())
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 55330),
            "path": path,
            "raw_path": quote(path).encode(),
            "query_string": query.encode(),
            "headers": [
                (str(k).lower().encode(), str(v).encode()) for k, v in (headers or {}).items()
            ],
            "subprotocols": [],
            "state": {},
        }
        responses: list[dict[str, Any]] = []
        self.responses = responses
        incoming = [{"type": "websocket.connect"}]

        async def receive() -> dict[str, Any]:
            # The connect first; then the client is gone, so the app's loop ends.
            if incoming:
                return incoming.pop(0)
            return {"type": "websocket.disconnect", "code": 1000, "reason": ""}

        async def send(message: dict[str, Any]) -> None:
            responses.append(dict(message))

        errors: list[BaseException] = []
        finished = anyio.Event()

        task: AppTask | None = None

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                assert task is not None  # started before it runs
                error = task.reported(exc, path)
                if error is None:
                    raise  # cancelled or abandoned after the timeout
                errors.append(error)
            finally:
                finished.set()

        async with AppTasks(Primitives(), self.timeout) as apps:
            task = apps.start(run(), name=f"app for {path!r}")
            with anyio.fail_after(self.timeout):
                await finished.wait()
        if errors:
            raise errors[0]
        return responses
