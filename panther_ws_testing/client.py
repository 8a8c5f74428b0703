"""``WebsocketTestClient``: drive any ASGI app's websockets in memory, with every wait bounded.

The client plays the ASGI server: it runs the app's lifespan and opens sessions
(:mod:`panther_ws_testing.session`), each app hosted by the server's own
:class:`~panther_ws.hosting.host.ConnectionHost`. Plain HTTP goes to the same app
through ``httpx.ASGITransport``, with one cookie jar for HTTP and websockets, as a browser
(and Starlette's TestClient) has.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from http.cookiejar import CookieJar
from types import TracebackType
from typing import Any

import anyio
import httpx

from panther_ws.hosting.lifespan import LifespanMode, LifespanRunner
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp, Receive, Scope, Send
from panther_ws.network.client import HeadersArg
from panther_ws.protocol import DEFAULT_MAX_MESSAGE_SIZE
from panther_ws_testing._apps import AppTask, AppTasks
from panther_ws_testing._differences import calling_test
from panther_ws_testing.session import (
    MAX_UNREAD_BYTES,
    Connecting,
    SessionSetup,
    WebsocketTestSession,
    client_ports,
)

__all__ = [
    "BASE_URL",
    "MAX_UNREAD_BYTES",
    "CookiesArg",
    "WebsocketTestClient",
    "WebsocketTestSession",
]

CookiesArg = httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]] | None

BASE_URL = "http://testserver"


class WebsocketTestClient:
    """Tests an ASGI app's websockets in memory; ``async with`` runs the app's lifespan.

    ``timeout`` bounds every wait (None: unbounded); ``wire=True`` sends everything as real
    frames through the core (``fragment_size`` splits client messages into small frames;
    ``permessage_deflate=True`` negotiates compression, off by default as it costs more than
    it tests). ``cookies`` starts the jar that HTTP responses update and websocket connects
    send. ``lifespan`` is uvicorn's mode: "auto" treats a lifespan scope that raises as
    unsupported, "on" requires it, "off" skips it (True and False, from before the modes,
    mean "auto" and "off"). ``strict=True`` fails the test on every ASGI violation, also
    those real servers tolerate (which otherwise warn, as ``ServerDifferenceWarning``).
    """

    def __init__(
        self,
        app: ASGIApp | Any,
        *,
        raise_app_exceptions: bool = True,
        timeout: float | None = 5.0,
        wire: bool = False,
        fragment_size: int | None = None,
        max_message_size: int = 16 * DEFAULT_MAX_MESSAGE_SIZE,
        permessage_deflate: bool = False,
        lifespan: LifespanMode | bool = "auto",
        strict: bool = False,
        cookies: CookiesArg = None,
    ) -> None:
        self._setup: SessionSetup | None = None  # see __setattr__
        self.app: ASGIApp = app
        self.raise_app_exceptions = raise_app_exceptions
        self.timeout = timeout
        self.wire = wire
        self.fragment_size = fragment_size
        self.max_message_size = max_message_size
        self.permessage_deflate = permessage_deflate
        self.strict = strict
        mode: LifespanMode = _LIFESPAN_FLAGS[lifespan] if isinstance(lifespan, bool) else lifespan
        self._lifespan = LifespanRunner(app, timeout=timeout, mode=mode) if mode != "off" else None
        self._lifespan_task: AppTask | None = None
        self._lifespan_tasks: AppTasks | None = None
        self._apps: AppTasks | None = None
        self._primitives: Primitives | None = None
        self._cookies = httpx.Cookies(cookies)
        self._http: httpx.AsyncClient | None = None  # made at the first request: it costs
        # Sessions opened with ``await client.connect()``, in order, until they are closed.
        self._unclosed: dict[WebsocketTestSession, None] = {}
        # The app's exceptions behind HTTP 500 rejections: raised on exit unless already up.
        self._errors_behind_rejections: list[BaseException] = []

    @property
    def lifespan_state(self) -> dict[str, Any]:
        """The lifespan ``state`` the app filled in; each connection's scope gets a copy."""
        return self._lifespan.state if self._lifespan is not None else {}

    @property
    def cookies(self) -> httpx.Cookies:
        """The cookie jar: HTTP responses update it, requests and websocket connects send it."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: CookiesArg) -> None:
        self._cookies = httpx.Cookies(cookies)
        if self._http is not None:
            self._http.cookies = self._cookies.jar  # a jar is shared, not copied

    async def __aenter__(self) -> WebsocketTestClient:
        self._primitives = Primitives()
        if self._lifespan is not None:
            # The lifespan runs as the apps do, so one that ignores its cancellation is
            # abandoned too, and a KeyboardInterrupt in it fails only the test.
            tasks = AppTasks(self._primitives, self.timeout)
            self._lifespan_tasks = await tasks.__aenter__()
            self._lifespan_task = tasks.start(self._run_lifespan(), name="app's lifespan")
            try:
                await self._lifespan.startup()
            except BaseException:
                self._lifespan_tasks = None
                await tasks.__aexit__(None, None, None)
                raise
        self._apps = await AppTasks(self._primitives, self.timeout).__aenter__()
        return self

    async def _run_lifespan(self) -> None:
        assert self._lifespan is not None
        assert self._lifespan_task is not None
        try:
            await self._lifespan.run()
        except BaseException as exc:
            error = self._lifespan_task.reported(exc, "lifespan")
            if error is None:
                raise  # the client cancelled or abandoned it
            self._lifespan.fail(error)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._apps is not None
        apps, self._apps = self._apps, None
        try:
            try:
                await self._close_unclosed()
            finally:
                await apps.__aexit__(None, None, None)  # as a server: connections end first
            if self._lifespan is not None and exc is None:
                await self._lifespan.shutdown()
        finally:
            if self._http is not None:
                await self._http.aclose()
                self._http = None
            if self._lifespan_tasks is not None:
                tasks, self._lifespan_tasks = self._lifespan_tasks, None
                await tasks.__aexit__(None, None, None)
        errors = self._errors_behind_rejections[:]  # the list is shared with the sessions
        self._errors_behind_rejections.clear()
        if errors and exc is None:
            raise errors[0]  # the test caught the rejection: the app's bug still fails it

    async def _close_unclosed(self) -> None:
        """Close the sessions opened with ``await connect()`` that the test left open."""
        while self._unclosed:
            session = next(iter(self._unclosed))
            warnings.warn(
                f"the websocket to {session.path!r} was opened with 'await client.connect()' "
                "and never closed; the client closed it (1001) on exit. Call 'await "
                "ws.close()', or use 'async with client.connect(...) as ws:'",
                ResourceWarning,
                stacklevel=3,
            )
            try:
                await session.close(1001)
            finally:
                session.cancel_app()

    # -- sessions ------------------------------------------------------------------------

    def connect(
        self,
        path: str,
        headers: HeadersArg = None,
        query_params: Mapping[str, Any] | None = None,
        subprotocols: Sequence[str] | None = None,
    ) -> Connecting:
        """Open a websocket to ``path``: ``async with client.connect(path) as ws:``.

        Entering raises :class:`WebsocketRejected` if the app refuses; leaving closes the
        session (1000) and returns once the app has handled the disconnect. ``ws = await
        client.connect(path)`` opens it too; then ``await ws.close()`` is the test's job
        (the client closes what is left open on exit, with a ``ResourceWarning``).
        The jar's cookies for ``path`` go in a ``cookie`` header, unless ``headers`` has one.
        """
        setup = self._setup or self._session_setup()
        # Arguments by position, here and in the session's own calls: on Python 3.11 each call
        # of a class with keywords costs ~0.4 us more (a dict made, then unpacked).
        session = WebsocketTestSession(
            setup, path, headers, query_params, subprotocols, calling_test()
        )
        assert self._apps is not None  # a setup exists only while the client is open
        return Connecting(session, self._apps)

    def _session_setup(self) -> SessionSetup:
        if self._apps is None or self._primitives is None:
            raise RuntimeError("use 'async with WebsocketTestClient(app) as client:' first")
        self._setup = SessionSetup(
            app=self.app,
            primitives=self._primitives,
            timeout=self.timeout,
            wire=self.wire,
            fragment_size=self.fragment_size,
            max_message_size=self.max_message_size,
            permessage_deflate=self.permessage_deflate,
            strict=self.strict,
            raise_app_exceptions=self.raise_app_exceptions,
            lifespan_state=self.lifespan_state,
            cookie_header=self._cookie_header,
            unclosed=self._unclosed,
            errors_behind_rejections=self._errors_behind_rejections,
        )
        return self._setup

    def __setattr__(self, name: str, value: Any) -> None:
        # The sessions' settings are read at each connect(): one SessionSetup serves every
        # connect until a setting changes (building one was 5% of a whole connect).
        object.__setattr__(self, name, value)
        if name in _SESSION_SETTINGS:
            object.__setattr__(self, "_setup", None)

    def _cookie_header(self, path: str) -> bytes | None:
        # An empty jar's len() walks it with a generator (a microsecond): look at its dict.
        if not getattr(self._cookies.jar, "_cookies", True):
            return None
        request = httpx.Request("GET", BASE_URL + path)
        self._cookies.set_cookie_header(request)
        cookie = request.headers.get("cookie")
        return cookie.encode("latin-1") if cookie is not None else None

    # -- plain HTTP ----------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An HTTP request to the app, as ``httpx.AsyncClient.request`` takes it.

        It goes through ``httpx.ASGITransport`` to the same app, with the lifespan state in
        ``scope["state"]``, on ``http://testserver``; the response's cookies go in the jar.
        """
        if self._apps is None:
            raise RuntimeError("use 'async with WebsocketTestClient(app) as client:' first")
        if self._http is None:
            transport = httpx.ASGITransport(
                app=self._http_app,
                raise_app_exceptions=self.raise_app_exceptions,
                client=("127.0.0.1", next(client_ports)),
            )
            self._http = httpx.AsyncClient(
                transport=transport,
                base_url=BASE_URL,
                cookies=self._cookies.jar,
            )
        # httpx's timeouts are the network's: the ASGI transport waits for the app as long
        # as it takes, so the client's own timeout bounds the request.
        with anyio.move_on_after(self.timeout if self.timeout is not None else math.inf):
            return await self._http.request(method, path, **kwargs)
        raise TimeoutError(f"the app did not answer {method} {path} within {self.timeout} s")

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def _http_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        # httpx's transport has no lifespan: the state is the client's, as for websockets.
        scope["state"] = dict(self.lifespan_state)
        await self.app(scope, receive, send)


# What a SessionSetup is made of: setting one of them makes the next connect() build a new one.
_SESSION_SETTINGS = frozenset(
    {
        "app",
        "raise_app_exceptions",
        "timeout",
        "wire",
        "fragment_size",
        "max_message_size",
        "permessage_deflate",
        "strict",
        "_lifespan",
        "_primitives",
        "_apps",
    }
)

# Before the modes: True ran the lifespan (and tolerated one without support), False not.
_LIFESPAN_FLAGS: dict[bool, LifespanMode] = {True: "auto", False: "off"}
