"""``WebsocketTestSession``: one websocket to the app under test, seen from the client side.

The app runs behind the same :class:`~panther_ws.hosting.host.ConnectionHost` the server
uses, so it gets what a server gives it (a ``websocket.disconnect`` after it closes or
rejects, ``ClientDisconnected`` for a send after the client left, HTTP 500 or a 1011/1000
close when it ends without closing). The session has the surface of the network client
(:class:`WebsocketSession`), plus fault primitives in wire mode.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import anyio

from panther_ws.hosting.host import AppInbox, ConnectionHost, Ending
from panther_ws.hosting.primitives import Primitives
from panther_ws.hosting.types import ASGIApp
from panther_ws.network.client import HeadersArg
from panther_ws.network.session import (
    ReceiveTimeout,
    TypedReceiveMixin,
    WebsocketClosed,
    WebsocketRejected,
)
from panther_ws.protocol import normalize_headers
from panther_ws.protocol.asgi import ASGIProtocolError, Leniency, build_scope, scope_extensions
from panther_ws.protocol.events import Accepted, Closed, Event, Message, Request
from panther_ws.protocol.payloads import as_payload
from panther_ws_testing._apps import AppTask, AppTasks
from panther_ws_testing._differences import Behaviour, CallSite, warn_server_difference
from panther_ws_testing._exceptions import AppCrashed
from panther_ws_testing._links import DirectLink, Link, Rejection, WireLink
from panther_ws_testing._mailbox import Inbox
from panther_ws_testing._transcript import Transcript

# The client port of each connection's scope (and of the HTTP client's), as a server would
# see distinct sockets.
client_ports = itertools.count(50000)

# What the app may send before the test reads, as a socket's buffers would take it: then
# its send() waits until the test reads. Each message counts 1 KiB more than its length
# (Inbox.MESSAGE_COST), so this is also at most 4,096 small messages; a message over the
# bound goes through whole.
MAX_UNREAD_BYTES = 4 * 1024 * 1024

# The connect every transcript starts with and the close most sessions record: shared, as
# nothing changes them.
_CONNECT = ("client", {"type": "websocket.connect"})
_NORMAL_CLOSE = Closed(1000, "")

# The server's address in every scope, as a server bound to one socket reports it.
_SERVER = ("testserver", 80)

_DIFFERENCES = {
    Ending.RETURNED_WHILE_OPEN: Behaviour.RETURNED_WHILE_OPEN,
    Ending.RAISED_WHILE_OPEN: Behaviour.RAISED_WHILE_OPEN,
    Leniency.NON_STR_CLOSE_REASON: Behaviour.NON_STR_CLOSE_REASON,
    Leniency.UNSENDABLE_CLOSE_BEFORE_ACCEPT: Behaviour.UNSENDABLE_CLOSE_BEFORE_ACCEPT,
}


@dataclass(slots=True)
class SessionSetup:
    """What a session takes from its test client, read when ``connect()`` is called.

    Plain values and the client's shared state, so that the session needs nothing of the
    client's class (the client imports the session, never the other way round).
    ``unclosed`` holds the sessions opened with ``await connect()`` until they are
    closed; ``errors_behind_rejections`` the app's exceptions behind HTTP 500 rejections,
    which the client raises on exit if the test caught the rejection.
    """

    app: ASGIApp
    primitives: Primitives
    timeout: float | None
    wire: bool
    fragment_size: int | None
    max_message_size: int
    permessage_deflate: bool
    strict: bool
    raise_app_exceptions: bool
    lifespan_state: dict[str, Any]
    cookie_header: Callable[[str], bytes | None]
    unclosed: dict[WebsocketTestSession, None]
    errors_behind_rejections: list[BaseException]


class WebsocketTestSession(TypedReceiveMixin):
    """One websocket connection to the app under test, seen from the client side.

    ``path`` is the path it was opened on; ``max_message_size`` the client's limit.
    ``opened_at`` is the test's line that called ``connect()``: the app's task, where the
    session's ``ServerDifferenceWarning``s are raised, has no frame of the test's.
    """

    # Until the app answers, and then what it answered: class defaults, so that a connect
    # sets only what it must (each store is a share of a connect's cost).
    accepted = False
    subprotocol: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    _app_done = False  # set, with a wake-up of the inbox, when the app returns
    _app_task: AppTask | None = None
    _app_error: BaseException | None = None
    _error_raised = False
    _closed_event: Closed | None = None

    def __init__(
        self,
        setup: SessionSetup,
        path: str,
        headers: HeadersArg = None,
        query_params: Mapping[str, Any] | None = None,
        subprotocols: Sequence[str] | None = None,
        opened_at: CallSite | None = None,
    ) -> None:
        self._setup = setup
        self._opened_at = opened_at
        self._timeout = setup.timeout
        self.max_message_size = setup.max_message_size
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.transcript = Transcript()
        primitives = setup.primitives
        self._checkpoint = primitives.checkpoint
        # What the client receives (core events), and what the app's receive() returns.
        self._inbox = Inbox(primitives, MAX_UNREAD_BYTES)
        app_inbox = AppInbox(primitives)

        self.path, raw_path, query_string = _split_path(path)
        if query_params:
            query_string = "&".join(
                part for part in (query_string, urlencode(query_params)) if part
            )
        header_pairs = (
            [(name.lower(), value) for name, value in normalize_headers(headers, call="connect()")]
            if headers
            else []
        )
        cookie = setup.cookie_header(self.path)
        if cookie is not None and all(name != b"cookie" for name, _ in header_pairs):
            header_pairs.append((b"cookie", cookie))
        client_addr = ("127.0.0.1", next(client_ports))
        if setup.wire:
            wire = WireLink(
                app_inbox,
                self._inbox,
                self.transcript,
                host="testserver",
                path=raw_path + (f"?{query_string}" if query_string else ""),
                headers=header_pairs,
                subprotocols=list(subprotocols or ()),
                fragment_size=setup.fragment_size,
                max_message_size=setup.max_message_size,
                permessage_deflate=setup.permessage_deflate,
                scope_extras={"client": client_addr, "server": _SERVER},
                strict=setup.strict,
            )
            self._link: Link = wire
            self._scope = wire.scope
        else:
            self._link = DirectLink(app_inbox, self._inbox, self.transcript, setup.strict)
            template = _direct_scope(
                raw_path,
                query_string,
                tuple(header_pairs) if header_pairs else (),
                tuple(subprotocols) if subprotocols else (),
            )
            self._scope = _own_copy(template, client_addr)
        self._host = ConnectionHost(
            self._link,
            app_inbox,
            self._scope,
            self._after_app_send,
            self._reported,
            self._warn,
        )

    # -- the app's side ----------------------------------------------------------------------

    def _after_app_send(self) -> Awaitable[None]:
        """What the host awaits after each app send (a plain function: no frame of its own)."""
        inbox = self._inbox
        if inbox.unread <= inbox.limit and not self._link.paused:
            # A real send yields while the socket drains; so does ours, so an app that
            # sends in a loop cannot starve the test's timeouts.
            return self._checkpoint()
        return self._wait_for_room()

    async def _wait_for_room(self) -> None:
        # A full socket blocks the server's write until the client reads: so does ours.
        inbox, link = self._inbox, self._link
        while (inbox.full() or link.held > inbox.limit) and not link.client_closed:
            await inbox.wait_for_room()

    def _reported(self, error: BaseException) -> BaseException | None:
        # Kept before the host's policy runs: the test may see the close or rejection first.
        assert self._app_task is not None
        self._app_error = self._app_task.reported(error, self.path)
        return self._app_error

    async def _run_app(self) -> None:
        host = self._host
        try:
            await host.run(self._setup.app)
        finally:
            self._app_done = True
            self._inbox.wake()
        if host.ending is not None and not isinstance(self._app_error, ASGIProtocolError):
            self._warn(host.ending)  # a violation is the test's failure already, not a difference

    def _warn(self, difference: Ending | Leniency) -> None:
        behaviour = _DIFFERENCES.get(difference)
        if behaviour is not None:
            warn_server_difference(behaviour, path=self.path, at=self._opened_at)

    @property
    def unread_bytes(self) -> int:
        """How much of the app's data waits for the test to read it (a socket's buffers)."""
        return self._inbox.unread + self._link.held

    def cancel_app(self) -> None:
        """Cancel an app still running after its session ended (rejected, or stuck)."""
        if not self._app_done and self._app_task is not None:
            self._app_task.cancel()

    # -- opening -------------------------------------------------------------------------

    async def _open(self, apps: AppTasks) -> WebsocketTestSession:
        """Start the app and wait for its answer; if that fails, the app is cancelled."""
        try:
            self._scope["state"] = dict(self._setup.lifespan_state)
            self.transcript.append(_CONNECT)
            self._app_task = apps.start(self._run_app(), name=f"app for {self.path!r}")
            await self._checkpoint()  # most apps answer at once: no wait, no timeout scope
            event: Event | None = self._inbox.pop_accepted()
            if event is None:
                event = await self._next_event(self._timeout, waiting_for="the app to accept")
            if isinstance(event, Accepted):
                self.accepted = True
                self.subprotocol = event.subprotocol
                if event.headers:
                    self.response_headers = list(event.headers)
                return self
            assert isinstance(event, Rejection)
            self.close_code, self.close_reason = event.code, event.reason
            rejected = WebsocketRejected(
                status_code=event.status_code,
                code=event.code,
                reason=event.reason,
                headers=event.headers,
                body=event.body,
            )
            error = self._app_error
            if error is not None and self._must_raise(error):
                # What a client sees (HTTP 500) now, the app's exception as its cause; the
                # client raises that exception on exit too, if the test caught the rejection.
                self._error_raised = True
                self._setup.errors_behind_rejections.append(error)
                raise rejected from error
            raise rejected
        except BaseException:
            self.cancel_app()
            raise

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
                    # The app is done and the connection is over for the client (it
                    # closed or dropped it): nothing more can come.
                    self._inbox.put(Closed(self.close_code or 1006, self.close_reason or ""))
                    return await self._next_event(timeout, waiting_for=waiting_for)
                raise ReceiveTimeout(
                    f"waited {limit} s for {waiting_for} on {self.path!r}, "
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
        if error is not None and not self._error_raised and self._must_raise(error):
            self._error_raised = True
            raise error

    def _must_raise(self, error: BaseException) -> bool:
        return (
            self._setup.raise_app_exceptions
            or isinstance(error, ASGIProtocolError | AppCrashed)
            or not isinstance(error, Exception)
        )

    # -- the session surface -------------------------------------------------------------

    async def send(self, data: Any) -> None:
        """Send ``str`` as text, ``bytes`` as binary, anything else as compact JSON text."""
        self._raise_app_error()
        if self._closed_event is not None or self._link.client_closed:
            code = self.close_code if self.close_code is not None else 1000
            raise WebsocketClosed(code, self.close_reason or "")
        self._link.client_send(as_payload(data))
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
        """Close from the client side; returns once the app has finished handling it.

        The app learns of the close when it next waits for input, as it would from a
        close frame on a network: what it sends before that is not an error.
        """
        unclosed = self._setup.unclosed
        if unclosed:  # most sessions are ``async with``'s, never in it
            unclosed.pop(self, None)
        if self._closed_event is None and not self._link.client_closed:
            self._link.client_close(code, reason)
            normal = code == 1000 and not reason
            self._record_close(_NORMAL_CLOSE if normal else Closed(code, reason))
        self._inbox.make_room()  # an app blocked on a send to a test that left goes on
        await self._wait_for_app()

    async def _leave(self) -> None:
        """Close as the ``async with`` block ends; cancel the app if that is cut short."""
        try:
            await self.close()
        finally:
            self.cancel_app()

    async def _wait_for_app(self) -> None:
        """Until the app returns, at most the timeout (it has had its disconnect)."""
        if not self._app_done:
            await self._checkpoint()  # most apps return at once: then no timeout scope
        if not self._app_done:
            with anyio.move_on_after(self._timeout if self._timeout is not None else math.inf):
                while not self._app_done:
                    await self._inbox.wait()
        if not self._app_done:
            raise ReceiveTimeout(
                f"the app was still running {self._timeout} s after the websocket on "
                f"{self.path!r} closed; its receive() returns websocket.disconnect, so it "
                f"should return. {self._describe()}"
            )
        self._raise_app_error()

    # -- faults (for fuzzing) ------------------------------------------------------------

    async def drop(self) -> None:
        """End the connection abruptly, with no close frame: the app sees 1006."""
        self._setup.unclosed.pop(self, None)
        if self._closed_event is None:
            self._link.drop()
            self._record_close(Closed(1006, ""))
        self._inbox.make_room()
        await self._wait_for_app()

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` as the client's socket would (split frames, interleaved pings).

        The bytes skip the client core: build them with ``ClientConnection`` or
        ``strategies.frames()``. Wire mode only.
        """
        self._wire("send_raw").send_raw(bytes(data))
        await self._checkpoint()
        self._raise_app_error()

    def pause_reading(self) -> None:
        """Stop taking the app's data: its sends block once a socket buffer's worth waits."""
        self._wire("pause_reading").pause_reading()

    def resume_reading(self) -> None:
        """Take the app's data again (what waited arrives in order)."""
        self._wire("resume_reading").resume_reading()
        self._inbox.make_room()

    def _wire(self, call: str) -> WireLink:
        link = self._link
        if not isinstance(link, WireLink):
            raise RuntimeError(
                f"ws.{call}() works on bytes, which a direct session does not have: "
                "use WebsocketTestClient(app, wire=True)"
            )
        return link


class Connecting:
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
        session._setup.unclosed[session] = None
        return session

    def __aenter__(self) -> Coroutine[Any, Any, WebsocketTestSession]:
        return self._session._open(self._apps)  # its coroutine: no frame of ours around it

    def __aexit__(self, *exc_info: object) -> Coroutine[Any, Any, None]:
        return self._session._leave()  # as __aenter__: no frame of ours around it


@functools.lru_cache(maxsize=256)
def _split_path(path: str) -> tuple[str, str, str]:
    """``path`` as the session names it, its percent-quoted path, and its query string.

    Cached: a suite opens the same few paths thousands of times, and quoting one costs
    about a microsecond, a few percent of a whole in-memory connect.
    """
    path = "/" + path.lstrip("/")
    path_only, _, query = path.partition("?")
    return path, quote(path_only, safe="/%:@!$&'()*+,;=-._~"), query


@functools.lru_cache(maxsize=256)
def _direct_scope(
    raw_path: str,
    query_string: str,
    headers: tuple[tuple[bytes, bytes], ...],
    subprotocols: tuple[str, ...],
) -> dict[str, Any]:
    """The scope a server builds for this upgrade request, kept to copy (see _own_copy).

    Built once per distinct request, by the core's ``build_scope`` like every scope; the
    copy costs half of building one (no quoting, decoding or lower-casing again).
    """
    if subprotocols:
        headers += ((b"sec-websocket-protocol", ", ".join(subprotocols).encode()),)
    request = Request(
        path=raw_path,
        query_string=query_string.encode("latin-1"),
        headers=((b"host", b"testserver"), *headers),
        subprotocols=subprotocols,
    )
    return build_scope(request, client=None, server=_SERVER)


def _own_copy(template: dict[str, Any], client: tuple[str, int]) -> dict[str, Any]:
    """``template`` with containers of its own: an app may change anything in its scope.

    Every list and dict of ``build_scope``'s scope is made anew (a test checks that no
    container is shared between two sessions; ``state``, the lifespan's, is set when the
    session opens); strings, bytes and tuples are immutable.
    """
    scope = template.copy()
    scope["asgi"] = template["asgi"].copy()
    scope["headers"] = template["headers"].copy()
    scope["subprotocols"] = template["subprotocols"].copy()
    scope["client"] = list(client)
    scope["server"] = template["server"].copy()
    scope["extensions"] = scope_extensions()
    return scope


def _short(message: Mapping[str, Any]) -> str:
    text = ", ".join(f"{key}={value!r:.60}" for key, value in message.items())
    return "{" + text + "}"
