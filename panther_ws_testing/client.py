"""``WebsocketTestClient``: drive any ASGI app's websockets in memory, with every wait bounded.

The client plays the ASGI server: it runs the app's lifespan, opens sessions, and behaves
towards the app as uvicorn would (a ``websocket.disconnect`` after the app closes or
rejects, ``ClientDisconnected`` for a send after the client left, a send that waits while
the test has a socket buffer's worth unread). The session plays the client, with the same
surface as the network client (:class:`WebsocketSession`). Plain HTTP goes to the same app
through ``httpx.ASGITransport``, with one cookie jar for HTTP and websockets, as a browser
(and Starlette's TestClient) has.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Awaitable, Callable, Generator, Mapping, MutableMapping, Sequence
from http.cookiejar import CookieJar
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import httpx
import orjson

from panther_ws.hosting.lifespan import LifespanRunner
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp, ASGIMessage
from panther_ws.network.client import HeadersArg
from panther_ws.network.session import (
    ReceiveTimeout,
    TypedReceiveMixin,
    WebsocketClosed,
    WebsocketRejected,
)
from panther_ws.protocol import DEFAULT_MAX_MESSAGE_SIZE, normalize_headers
from panther_ws.protocol.asgi import ASGIProtocolError, build_scope
from panther_ws.protocol.events import Accepted, Closed, Event, Message, Request
from panther_ws_testing._apps import AppTask, AppTasks
from panther_ws_testing._exceptions import AppCrashed
from panther_ws_testing._links import DirectLink, Ends, Link, Rejection, WireLink
from panther_ws_testing._mailbox import Inbox, Mailbox
from panther_ws_testing._transcript import Transcript

CookiesArg = httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]] | None

BASE_URL = "http://testserver"

_client_ports = itertools.count(50000)

# What the app may send before the test reads, as a socket's buffers would take it: then
# its send() waits until the test reads. Each message counts 1 KiB more than its length
# (Inbox.MESSAGE_COST), so this is also at most 4,096 small messages; a message over the
# bound goes through whole.
MAX_UNREAD_BYTES = 4 * 1024 * 1024


class WebsocketTestSession(TypedReceiveMixin):
    """One websocket connection to the app under test, seen from the client side."""

    def __init__(
        self,
        client: WebsocketTestClient,
        path: str,
        *,
        headers: HeadersArg,
        query_params: Mapping[str, Any] | None,
        subprotocols: Sequence[str] | None,
    ) -> None:
        self._client = client
        self._timeout = client.timeout
        self.accepted = False
        self.subprotocol: str | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.transcript = Transcript()
        primitives = client._primitives
        assert primitives is not None
        self._checkpoint = primitives.checkpoint
        # What the client receives (core events), and what the app's receive() returns.
        self._inbox = Inbox(primitives, limit=MAX_UNREAD_BYTES)
        self._app_inbox = Mailbox(primitives)
        ends = Ends(self._app_inbox, self._inbox, self.transcript)
        self._app_done = False  # set, with a wake-up of the inbox, when the app returns
        self._app_task: AppTask | None = None
        self._disconnect_seen = False
        self._app_error: BaseException | None = None
        self._error_raised = False
        self._closed_event: Closed | None = None

        path = "/" + path.lstrip("/")
        path_only, _, query = path.partition("?")
        query_string = query
        if query_params:
            query_string = "&".join(part for part in (query, urlencode(query_params)) if part)
        header_pairs = [
            (name.lower(), value)
            for name, value in normalize_headers(headers or (), call="connect()")
        ]
        cookie = client._cookie_header(path)
        if cookie is not None and all(name != b"cookie" for name, _ in header_pairs):
            header_pairs.append((b"cookie", cookie))
        raw_path = quote(path_only, safe="/%:@!$&'()*+,;=-._~")
        target = raw_path + (f"?{query_string}" if query_string else "")
        client_addr = ("127.0.0.1", next(_client_ports))
        server_addr = ("testserver", 80)
        if client.wire:
            self._link: Link = WireLink(
                ends,
                host="testserver",
                path=target,
                headers=header_pairs,
                subprotocols=list(subprotocols or ()),
                fragment_size=client.fragment_size,
                max_message_size=client.max_message_size,
                permessage_deflate=client.permessage_deflate,
                scope_extras={"client": client_addr, "server": server_addr},
            )
            self._scope: dict[str, Any] = {}
        else:
            self._link = DirectLink(ends)
            request_headers = [(b"host", b"testserver"), *header_pairs]
            if subprotocols:
                request_headers.append(
                    (b"sec-websocket-protocol", ", ".join(subprotocols).encode())
                )
            request = Request(
                path=raw_path,
                query_string=query_string.encode("latin-1"),
                headers=tuple(request_headers),
                subprotocols=tuple(subprotocols or ()),
            )
            self._scope = build_scope(request, client=client_addr, server=server_addr)
        self._path = path

    # -- the app's side of the link ---------------------------------------------------------

    async def _app_receive(self) -> ASGIMessage:
        while not self._app_inbox:
            await self._app_inbox.wait()
        message: ASGIMessage = self._app_inbox.pop()
        if message["type"] == "websocket.disconnect":
            self._app_inbox.put(message)  # every later receive() sees the disconnect too
            if self._disconnect_seen:
                # A repeat: yield, so an app that loops on receive() cannot starve timeouts.
                await self._checkpoint()
            self._disconnect_seen = True
        return message

    async def _app_send(self, message: ASGIMessage) -> None:
        transcript = self.transcript
        transcript.append(("app", message))
        if len(transcript) > Transcript.LIMIT:
            transcript.trim()
        self._link.app_send(message)
        inbox = self._inbox
        if inbox.unread <= inbox.limit:
            # A real send yields while the socket drains; so does ours, so an app that
            # sends in a loop cannot starve the test's timeouts.
            await self._checkpoint()
            return
        # A full socket blocks the server's write until the client reads: so does ours.
        while inbox.full() and not self._link.client_closed:
            await inbox.wait_for_room()

    async def _run_app(self) -> None:
        try:
            await self._client.app(self._scope, self._app_receive, self._app_send)
        except BaseException as exc:
            assert self._app_task is not None
            error = self._app_error = self._app_task.reported(exc, self._path)
            if error is None:
                raise  # the client cancelled or abandoned the app
            if isinstance(error, AppCrashed) or (
                isinstance(error, Exception)
                and not isinstance(error, ASGIProtocolError)
                and not self._client.raise_app_exceptions
            ):
                self._fail_like_a_server()
        finally:
            self._app_done = True
            self._inbox.wake()

    def _cancel_app(self) -> None:
        """Cancel an app still running after its session ended (rejected, or stuck)."""
        if not self._app_done and self._app_task is not None:
            self._app_task.cancel()

    def _fail_like_a_server(self) -> None:
        # What a client on the wire sees when the app crashes: HTTP 500 before accept,
        # a 1011 close after it.
        if self.accepted:
            self._inbox.put(Closed(1011, ""))
        else:
            self._inbox.put(Rejection(500))

    # -- opening -------------------------------------------------------------------------

    async def _open(self, apps: AppTasks) -> None:
        if isinstance(self._link, WireLink):
            self._scope = self._link.connect()
        self._scope["state"] = dict(self._client.lifespan_state)
        if isinstance(self._link, DirectLink):
            self._link.connect()
        self._app_task = apps.start(self._run_app(), name=f"app for {self._path!r}")
        event = await self._next_event(self._timeout, waiting_for="the app to accept")
        if isinstance(event, Accepted):
            self.accepted = True
            self.subprotocol = event.subprotocol
            self.response_headers = list(event.headers)
            return
        self._raise_app_error()
        if isinstance(event, Rejection):
            self.close_code, self.close_reason = event.code, event.reason
            raise WebsocketRejected(
                status_code=event.status_code,
                code=event.code,
                reason=event.reason,
                headers=event.headers,
                body=event.body,
            )
        # The app returned without accepting or closing: servers answer HTTP 500.
        raise WebsocketRejected(status_code=500)

    # -- waiting -------------------------------------------------------------------------

    async def _next_event(self, timeout: float | None, *, waiting_for: str) -> Event:
        """The next event for the client; raises the app's error or ReceiveTimeout."""
        if not self._inbox:
            # Usually the app answers within one scheduling round: try that before paying
            # for a timeout scope.
            await self._checkpoint()
        if not self._inbox:
            limit = self._timeout if timeout is None else timeout
            with anyio.move_on_after(limit if limit is not None else math.inf):
                while not self._inbox and not self._app_done:
                    await self._inbox.wait()
            if not self._inbox:
                self._raise_app_error()
                if self._app_done:
                    # The app returned without closing: a server drops the socket.
                    self._inbox.put(Closed(1006, ""))
                    return await self._next_event(timeout, waiting_for=waiting_for)
                raise ReceiveTimeout(
                    f"waited {limit} s for {waiting_for} on {self._path!r}, "
                    f"but nothing arrived. {self._describe()}"
                )
        event: Event = self._inbox.peek()
        if isinstance(event, Closed):
            self._record_close(event)
        else:
            self._inbox.pop()
        return event

    def _record_close(self, event: Closed) -> None:
        if self._closed_event is None:
            self._closed_event = event
            self.close_code, self.close_reason = event.code, event.reason

    def _describe(self) -> str:
        transcript = self.transcript
        if not transcript:
            return "The app has not received or sent anything."
        lines = [f"  {who:>6} -> {_short(message)}" for who, message in transcript[-20:]]
        shown = f"the last {len(lines)} of {len(transcript) + transcript.dropped} messages"
        if transcript.dropped:
            shown += f"; {transcript.dropped} in the middle were dropped, the transcript keeps"
            shown += " the first and the last"
        description = f"Transcript ({shown}):\n" + "\n".join(lines)
        if self._app_task is not None and not self._app_done:
            description += f"\nThe app is {self._app_task.where()}."
        return description

    def _raise_app_error(self) -> None:
        error = self._app_error
        if error is None or self._error_raised:
            return
        if (
            self._client.raise_app_exceptions
            or isinstance(error, ASGIProtocolError | AppCrashed)
            or not isinstance(error, Exception)
        ):
            self._error_raised = True
            raise error

    # -- the session surface -------------------------------------------------------------

    async def send(self, data: Any) -> None:
        """Send ``str`` as text, ``bytes`` as binary, anything else as compact JSON text."""
        self._raise_app_error()
        if self._closed_event is not None or self._link.client_closed:
            code = self.close_code if self.close_code is not None else 1000
            raise WebsocketClosed(code, self.close_reason or "")
        if not isinstance(data, str | bytes):
            data = orjson.dumps(data).decode()
        self._link.client_send(data)
        if len(self.transcript) > Transcript.LIMIT:
            self.transcript.trim()

    async def receive(self, *, timeout: float | None = None) -> str | bytes:
        event = await self._next_event(timeout, waiting_for="a message")
        if isinstance(event, Message):
            return event.data
        assert isinstance(event, Closed)
        self._raise_app_error()
        raise WebsocketClosed(event.code, event.reason)

    async def ping(self, payload: bytes = b"", *, timeout: float | None = None) -> None:
        """Send a ping; returns once its pong arrived, as the network client's does.

        Wire mode sends a real ping frame through both cores and returns when the server
        core's pong reached the client core (in memory, within this call: ``timeout`` is
        there for the network client's signature). Direct mode has no frames, and ASGI no
        ping: a server answers pings itself, so it checks that the connection is open (the
        payload too) and returns. The app sees nothing in either mode, as under uvicorn.
        Raises ``WebsocketClosed`` if the connection is closed, as no pong can come then.
        """
        self._raise_app_error()
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"ping() takes bytes, got {type(payload).__name__}: {payload!r:.60}")
        await self._checkpoint()  # the round trip: what the app does meanwhile comes first
        self._raise_app_error()
        closed = self._closed_error()
        if closed is None and not self._link.client_ping(bytes(payload)):
            closed = self._closed_error() or WebsocketClosed(1006)
        if closed is not None:
            raise closed

    def _closed_error(self) -> WebsocketClosed | None:
        """Why the connection is closed (also a close the test has not read yet), or None."""
        closed = self._closed_event or self._inbox.pending_close()
        if closed is not None:
            return WebsocketClosed(closed.code, closed.reason)
        if self._link.client_closed:
            return WebsocketClosed(self.close_code or 1000, self.close_reason or "")
        if self._app_done:
            return WebsocketClosed(1006)  # the app returned without closing: the socket drops
        return None

    async def wait_closed(self, *, timeout: float | None = None) -> tuple[int, str]:
        """Wait for the app to close the connection; returns its ``(code, reason)``."""
        while self._closed_event is None:
            event = await self._next_event(timeout, waiting_for="the app to close")
            if isinstance(event, Message):
                continue
        self._raise_app_error()
        return self._closed_event.code, self._closed_event.reason

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side; returns once the app has finished handling it."""
        self._client._unclosed.pop(self, None)
        if self._closed_event is None and not self._link.client_closed:
            self._link.client_close(code, reason)
            self._record_close(Closed(code, reason))
        self._inbox.make_room()  # an app blocked on a send to a test that left goes on
        await self._wait_for_app()

    async def _wait_for_app(self) -> None:
        if not self._app_done:
            await self._checkpoint()  # most apps return at once: skip the scope
        if not self._app_done:
            with anyio.move_on_after(self._timeout if self._timeout is not None else math.inf):
                while not self._app_done:
                    await self._inbox.wait()
        if not self._app_done:
            raise ReceiveTimeout(
                f"the app was still running {self._timeout} s after the websocket on "
                f"{self._path!r} closed; its receive() returns websocket.disconnect, so it "
                f"should return. {self._describe()}"
            )
        self._raise_app_error()


class WebsocketTestClient:
    """Tests an ASGI app's websockets in memory; ``async with`` runs the app's lifespan.

    ``timeout`` bounds every wait (None: unbounded); ``wire=True`` sends everything as real
    frames through the core (``fragment_size`` splits client messages into small frames;
    ``permessage_deflate=True`` negotiates compression, off by default as it costs more than
    it tests). ``cookies`` starts the jar that HTTP responses update and websocket connects
    send.
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
        lifespan: bool = True,
        cookies: CookiesArg = None,
    ) -> None:
        self.app: ASGIApp = app
        self.raise_app_exceptions = raise_app_exceptions
        self.timeout = timeout
        self.wire = wire
        self.fragment_size = fragment_size
        self.max_message_size = max_message_size
        self.permessage_deflate = permessage_deflate
        self._lifespan = LifespanRunner(app, timeout=timeout) if lifespan else None
        self._lifespan_task: AppTask | None = None
        self._lifespan_tasks: AppTasks | None = None
        self._apps: AppTasks | None = None
        self._primitives: Primitives | None = None
        self._cookies = httpx.Cookies(cookies)
        self._http: httpx.AsyncClient | None = None  # made at the first request: it costs
        # Sessions opened with ``await client.connect()``, in order, until they are closed.
        self._unclosed: dict[WebsocketTestSession, None] = {}

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

    async def _close_unclosed(self) -> None:
        """Close the sessions opened with ``await connect()`` that the test left open."""
        while self._unclosed:
            session = next(iter(self._unclosed))
            warnings.warn(
                f"the websocket to {session._path!r} was opened with 'await client.connect()' "
                "and never closed; the client closed it (1001) on exit. Call 'await "
                "ws.close()', or use 'async with client.connect(...) as ws:'",
                ResourceWarning,
                stacklevel=3,
            )
            try:
                await session.close(1001)
            finally:
                session._cancel_app()

    # -- sessions ------------------------------------------------------------------------

    def connect(
        self,
        path: str,
        headers: HeadersArg = None,
        query_params: Mapping[str, Any] | None = None,
        subprotocols: Sequence[str] | None = None,
    ) -> _Connecting:
        """Open a websocket to ``path``: ``async with client.connect(path) as ws:``.

        Entering raises :class:`WebsocketRejected` if the app refuses; leaving closes the
        session (1000) and returns once the app has handled the disconnect. ``ws = await
        client.connect(path)`` opens it too; then ``await ws.close()`` is the test's job
        (the client closes what is left open on exit, with a ``ResourceWarning``).
        The jar's cookies for ``path`` go in a ``cookie`` header, unless ``headers`` has one.
        """
        if self._apps is None:
            raise RuntimeError("use 'async with WebsocketTestClient(app) as client:' first")
        session = WebsocketTestSession(
            self, path, headers=headers, query_params=query_params, subprotocols=subprotocols
        )
        return _Connecting(session, self._apps)

    def _cookie_header(self, path: str) -> bytes | None:
        if not self._cookies.jar:
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
                client=("127.0.0.1", next(_client_ports)),
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

    async def _http_app(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        # httpx's transport has no lifespan: the state is the client's, as for websockets.
        scope["state"] = dict(self.lifespan_state)
        await self.app(scope, receive, send)


class _Connecting:
    """What ``connect()`` returns: ``async with`` opens and closes; ``await`` only opens.

    The app runs as one of the client's :class:`AppTasks` and never raises there (its
    errors are kept and raised in the test, with their own type): no task group per
    session, so no ExceptionGroup, and a connect costs little more than starting one task.
    If the test's own scope is cancelled, the close is cut short and the app is cancelled.
    """

    __slots__ = ("_apps", "_session")

    def __init__(self, session: WebsocketTestSession, apps: AppTasks) -> None:
        self._session = session
        self._apps = apps

    def __await__(self) -> Generator[Any, None, WebsocketTestSession]:
        return self._open_unmanaged().__await__()

    async def _open_unmanaged(self) -> WebsocketTestSession:
        session = await self.__aenter__()
        session._client._unclosed[session] = None
        return session

    async def __aenter__(self) -> WebsocketTestSession:
        try:
            await self._session._open(self._apps)
        except BaseException:
            self._session._cancel_app()
            raise
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._session.close()
        finally:
            self._session._cancel_app()


def _short(message: Mapping[str, Any]) -> str:
    text = ", ".join(f"{key}={value!r:.60}" for key, value in message.items())
    return "{" + text + "}"
