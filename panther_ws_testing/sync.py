"""``SyncWebsocketTestClient``: the same client, blocking, for unittest-style tests.

One anyio blocking portal (one event loop thread) lives as long as the client, so every
session of the client shares a loop, as they would in an async test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, Literal

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from panther_ws.network.client import HeadersArg
from panther_ws_testing.client import CookiesArg, WebsocketTestClient, WebsocketTestSession


class SyncWebsocketTestSession:
    """Blocking twin of :class:`WebsocketTestSession`."""

    def __init__(self, portal: BlockingPortal, session: WebsocketTestSession) -> None:
        self._portal = portal
        self._session = session

    def __getattr__(self, name: str) -> Any:
        # accepted, subprotocol, response_headers, close_code, close_reason, transcript
        return getattr(self._session, name)

    def send(self, data: Any) -> None:
        self._portal.call(self._session.send, data)

    def send_text(self, data: str) -> None:
        self._portal.call(self._session.send_text, data)

    def send_bytes(self, data: bytes) -> None:
        self._portal.call(self._session.send_bytes, data)

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        self._portal.call(self._session.send_json, data, mode)

    def ping(self, payload: bytes = b"", *, timeout: float | None = None) -> None:
        self._portal.call(lambda: self._session.ping(payload, timeout=timeout))

    def receive(self, *, timeout: float | None = None) -> str | bytes:
        return self._portal.call(lambda: self._session.receive(timeout=timeout))

    def receive_text(self, *, timeout: float | None = None) -> str:
        return self._portal.call(lambda: self._session.receive_text(timeout=timeout))

    def receive_bytes(self, *, timeout: float | None = None) -> bytes:
        return self._portal.call(lambda: self._session.receive_bytes(timeout=timeout))

    def receive_json(self, *, timeout: float | None = None) -> Any:
        return self._portal.call(lambda: self._session.receive_json(timeout=timeout))

    def receive_nothing(self, *, timeout: float = 0.1) -> None:
        self._portal.call(lambda: self._session.receive_nothing(timeout=timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._portal.call(self._session.close, code, reason)

    def wait_closed(self, *, timeout: float | None = None) -> tuple[int, str]:
        return self._portal.call(lambda: self._session.wait_closed(timeout=timeout))

    def __iter__(self) -> Iterator[str | bytes]:
        iterator = self._session.__aiter__()
        while True:
            try:
                yield self._portal.call(iterator.__anext__)
            except StopAsyncIteration:
                return


class SyncWebsocketTestClient:
    """``with SyncWebsocketTestClient(app) as client: with client.connect(path) as ws: ...``"""

    def __init__(self, app: Any, *, backend: str = "asyncio", **options: Any) -> None:
        self._client = WebsocketTestClient(app, **options)
        self._backend = backend
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._client_cm: AbstractContextManager[WebsocketTestClient] | None = None

    def __enter__(self) -> SyncWebsocketTestClient:
        self._portal_cm = start_blocking_portal(self._backend)
        self._portal = self._portal_cm.__enter__()
        # The client's task group must be entered and left in one task: the portal's
        # context-manager wrapper runs it in a task of its own.
        self._client_cm = self._portal.wrap_async_context_manager(self._client)
        try:
            self._client_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._client_cm is not None
        assert self._portal_cm is not None
        try:
            self._client_cm.__exit__(exc_type, exc, traceback)
        finally:
            self._portal_cm.__exit__(None, None, None)

    @property
    def cookies(self) -> httpx.Cookies:
        """The cookie jar HTTP responses update and websocket connects send."""
        return self._client.cookies

    @cookies.setter
    def cookies(self, cookies: CookiesArg) -> None:
        self._client.cookies = cookies

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An HTTP request to the app, as :meth:`WebsocketTestClient.request` makes it."""
        if self._portal is None:
            raise RuntimeError("use 'with SyncWebsocketTestClient(app) as client:' first")
        return self._portal.call(lambda: self._client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    @contextmanager
    def connect(
        self,
        path: str,
        headers: HeadersArg = None,
        query_params: Mapping[str, Any] | None = None,
        subprotocols: Sequence[str] | None = None,
    ) -> Iterator[SyncWebsocketTestSession]:
        if self._portal is None:
            raise RuntimeError("use 'with SyncWebsocketTestClient(app) as client:' first")
        manager = self._client.connect(path, headers, query_params, subprotocols)
        with self._portal.wrap_async_context_manager(manager) as session:
            yield SyncWebsocketTestSession(self._portal, session)
