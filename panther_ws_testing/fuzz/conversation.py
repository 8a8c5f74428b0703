"""A planned conversation, played in one task against fresh test clients, as its script says.

The machine only *plans* (Hypothesis draws the steps); :class:`Conversation` plays the plan
in one task, exactly as the printed reproduction does, so what fails here fails there. Each
step writes its lines into the :class:`Script` as it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from hypothesis import strategies as st

from panther_ws import App
from panther_ws.brokers import MemoryBroker
from panther_ws_testing import (
    ReceiveTimeout,
    WebsocketClosed,
    WebsocketRejected,
    WebsocketTestClient,
    WebsocketTestSession,
)
from panther_ws_testing.fuzz.checks import (
    allowing,
    assert_app_at_rest,
    assert_bounded_unread,
    assert_close_code,
)
from panther_ws_testing.fuzz.endpoints import ConnectRequest, Endpoint
from panther_ws_testing.fuzz.script import Script, arguments, call
from panther_ws_testing.fuzz.settling import DEFAULT_TIMEOUT, settle

Invariant = Callable[[Sequence[WebsocketTestSession]], None]
AtRest = Callable[[], None]
UserRule = Callable[..., Awaitable[None]]


@dataclass
class Hooks:
    """What users add to a machine with its decorators."""

    invariants: list[Invariant] = field(default_factory=list)
    at_rest: list[AtRest] = field(default_factory=list)
    rules: list[tuple[UserRule, Mapping[str, st.SearchStrategy[Any]]]] = field(default_factory=list)


@dataclass(frozen=True)
class Spec:
    """How a machine talks to its app: fixed when the machine is made."""

    app: Any  # an ASGI app; with several workers, a callable (broker) -> App
    endpoints: tuple[Endpoint, ...]
    workers: int
    wire: bool
    max_clients: int
    timeout: float
    allowed_exceptions: tuple[type[BaseException], ...]
    check_at_rest: bool
    backend: str
    reset: Callable[[], None] | None
    hooks: Hooks

    def build_apps(self) -> list[Any]:
        if self.workers == 1:
            return [self.app]
        broker = MemoryBroker()
        return [self.app(broker) for _ in range(self.workers)]


@dataclass(eq=False)
class Client:
    """One client of the plan; while playing, its name and session once really open."""

    endpoint: Endpoint
    request: ConnectRequest
    worker: int
    name: str = ""
    session: WebsocketTestSession | None = None
    closed_by_app: bool = False
    left: bool = False
    paused: bool = False  # it stopped reading (wire mode)
    unanswered: int = 0  # messages sent to an endpoint that replies, not yet answered

    def begin(self, name: str) -> None:
        """Forget an earlier play of the same plan (the plan is replayed while shrinking)."""
        self.name, self.session = name, None
        self.closed_by_app = self.left = self.paused = False
        self.unanswered = 0

    @property
    def is_open(self) -> bool:
        return self.session is not None and not self.closed_by_app and not self.left


class Step(Protocol):
    @property
    def client(self) -> Client: ...

    async def play(self, conversation: Conversation) -> bool:
        """Do the step; False if it turned out to do nothing (and wrote nothing)."""
        ...


@dataclass(frozen=True)
class Open:
    client: Client

    async def play(self, conversation: Conversation) -> bool:
        client, request = self.client, self.client.request
        conversation.planned.append(client)
        client.begin(f"ws{len(conversation.planned)}")
        connect = call(
            f"{conversation.client_name(client.worker)}.connect",
            request.path,
            query_params=request.query_params,
            headers=request.headers,
            subprotocols=list(request.subprotocols),
        )
        script = conversation.script
        script.step(f"{client.name} = await stack.enter_async_context({connect})")
        manager = conversation.clients[client.worker].connect(
            request.path,
            headers=dict(request.headers),
            query_params=dict(request.query_params),
            subprotocols=list(request.subprotocols),
        )
        try:
            client.session = await conversation.sessions.enter_async_context(manager)
        except WebsocketRejected as rejected:
            if rejected.status_code == 500:
                # The app returned or crashed before answering: a server error, reported
                # as the app's own exception when there is one.
                raise (rejected.__cause__ or rejected) from None
            script.retract()
            script.step(f"await stack.enter_async_context({connect})")
            allowed = client.endpoint.close_codes
            if allowed is None or rejected.code is None or rejected.code in allowed:
                script.expect("WebsocketRejected")
                return True
            script.expect("WebsocketRejected", as_name="rejected")
            check = script.reference(assert_close_code)
            script.check(f"{check}({request.path!r}, rejected.value.code, {sorted(allowed)})")
            assert_close_code(request.path, rejected.code, allowed)
        return True


@dataclass(frozen=True)
class Send:
    client: Client
    message: Any

    async def play(self, conversation: Conversation) -> bool:
        session = self.client.session
        if session is None or not self.client.is_open:
            return False
        conversation.script.step(f"await {self.client.name}.send({self.message!r})")
        try:
            await session.send(self.message)
        except WebsocketClosed:
            await conversation.app_closed(self.client)
            return True
        if self.client.endpoint.replies:
            self.client.unanswered += 1
        return True


@dataclass(frozen=True)
class Ping:
    """A ping between messages (wire mode): the core must answer it, the app sees nothing."""

    client: Client
    payload: bytes

    async def play(self, conversation: Conversation) -> bool:
        session = self.client.session
        if session is None or not self.client.is_open:
            return False
        conversation.script.step(f"await {self.client.name}.ping({self.payload!r})")
        try:
            await session.ping(self.payload)
        except WebsocketClosed:
            await conversation.app_closed(self.client)
        return True


@dataclass(frozen=True)
class Receive:
    """Wait for the answer an endpoint that replies owes, else take what has arrived."""

    client: Client

    async def play(self, conversation: Conversation) -> bool:
        client, session = self.client, self.client.session
        if session is None or not client.is_open:
            return False
        conversation.script.step(f"await {client.name}.receive()")
        try:
            await session.receive(timeout=None if client.unanswered else 0)
        except ReceiveTimeout:
            if client.unanswered:
                raise  # the app never answered: the message shows what it saw
            conversation.script.retract()
            return False
        except WebsocketClosed:
            await conversation.app_closed(client)
            return True
        client.unanswered = max(0, client.unanswered - 1)
        return True


@dataclass(frozen=True)
class Close:
    """The client leaves with a close frame."""

    client: Client
    code: int = 1000
    reason: str = ""

    async def play(self, conversation: Conversation) -> bool:
        client, session = self.client, self.client.session
        if session is None or not client.is_open:
            return False
        client.left = True
        if (self.code, self.reason) == (1000, ""):
            line = f"await {client.name}.close()"
        else:
            line = f"await {client.name}.close({self.code}, {self.reason!r})"
        conversation.script.step(line)
        await session.close(self.code, self.reason)
        await conversation.check_at_rest_if_idle()
        return True


@dataclass(frozen=True)
class Drop:
    """The client's connection ends abruptly, with no close frame: the app sees 1006."""

    client: Client

    async def play(self, conversation: Conversation) -> bool:
        client, session = self.client, self.client.session
        if session is None or not client.is_open:
            return False
        client.left = True
        conversation.script.step(f"await {client.name}.drop()  # no close frame: the app sees 1006")
        await session.drop()
        await conversation.check_at_rest_if_idle()
        return True


@dataclass(frozen=True)
class CallUserRule:
    client: Client
    rule: UserRule
    arguments: Mapping[str, Any]

    async def play(self, conversation: Conversation) -> bool:
        session = self.client.session
        if session is None or not self.client.is_open:
            return False
        name = conversation.script.reference(self.rule)
        args = ", ".join(filter(None, [self.client.name, arguments(self.arguments)]))
        conversation.script.step(f"await {name}({args})")
        try:
            await self.rule(session, **self.arguments)
        except WebsocketClosed:
            await conversation.app_closed(self.client)
        return True


class Conversation:
    """Plays ``steps`` against fresh test clients of ``spec``'s app, writing ``script``."""

    def __init__(self, spec: Spec, steps: Sequence[Step], *, fragment_size: int | None) -> None:
        self.spec = spec
        self.steps = steps
        self.fragment_size = fragment_size
        self.script = Script()
        self.apps: list[Any] = []
        self.clients: list[WebsocketTestClient] = []
        self.sessions = AsyncExitStack()
        self.planned: list[Client] = []
        self._last: Client | None = None  # the client of the last step played

    def client_name(self, worker: int) -> str:
        return "client" if self.spec.workers == 1 else f"client{worker + 1}"

    def app_name(self, worker: int) -> str:
        return "app" if self.spec.workers == 1 else f"worker{worker + 1}"

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"timeout": self.spec.timeout}
        if self.spec.wire:
            options["wire"] = True
            if self.fragment_size is not None:
                options["fragment_size"] = self.fragment_size
        return options

    async def play(self) -> None:
        if self.spec.reset is not None:
            self.spec.reset()
        self.apps = self.spec.build_apps()
        allowed = self.spec.allowed_exceptions
        async with AsyncExitStack() as clients:
            for app in self.apps:
                served = allowing(app, *allowed) if allowed else app
                client = WebsocketTestClient(served, **self.client_options())
                self.clients.append(await clients.enter_async_context(client))
            async with self.sessions:
                for step in self.steps:
                    await self._settle_before(step)
                    if await step.play(self):
                        self._last = step.client
                        self.check_invariants()
                    else:
                        self.script.skip_step()
            self.check_at_rest(after=True)

    async def _settle_before(self, step: Step) -> None:
        """Let what another client's step set off finish first, in the printed test too.

        Only a change of client needs it: one client's steps reach the app in order.
        """
        client = step.client
        if self._last is None or client is self._last:
            return
        if isinstance(step, Open) or client.is_open:
            self.script.before_step(await self.settle())

    async def settle(self) -> str:
        """Settle the loop; returns the line that does the same in the printed test."""
        await settle(timeout=self.spec.timeout)
        name = self.script.reference(settle)
        if self.spec.timeout == DEFAULT_TIMEOUT:
            return f"await {name}()"
        return f"await {name}(timeout={self.spec.timeout!r})"

    async def app_closed(self, client: Client) -> None:
        """The app closed ``client``'s connection: the last step raised WebsocketClosed."""
        self.script.expect("WebsocketClosed")
        client.closed_by_app = True
        allowed = client.endpoint.close_codes
        session = client.session
        if allowed is None or session is None:
            return
        code, _ = await session.wait_closed()
        if code not in allowed:
            check = self.script.reference(assert_close_code)
            path = client.request.path
            waited = f"(await {client.name}.wait_closed())[0]"
            self.script.check(f"{check}({path!r}, {waited}, {sorted(allowed)})")
            assert_close_code(path, code, allowed)

    def check_invariants(self) -> None:
        self._check_paused()
        sessions = [c.session for c in self.planned if c.is_open and c.session is not None]
        for invariant in self.spec.hooks.invariants:
            try:
                invariant(sessions)
            except BaseException:
                names = ", ".join(c.name for c in self.planned if c.is_open)
                self.script.check(f"{self.script.reference(invariant)}([{names}])")
                raise

    def _check_paused(self) -> None:
        """Every client that stopped reading holds at most a bounded amount of the app's data."""
        for client in self.planned:
            if client.paused and client.is_open and client.session is not None:
                try:
                    assert_bounded_unread(client.session)
                except BaseException:
                    check = self.script.reference(assert_bounded_unread)
                    self.script.check(f"{check}({client.name})")
                    raise

    async def check_at_rest_if_idle(self) -> None:
        """Once no client is open, every app it talked to must have let go of it."""
        if any(client.is_open for client in self.planned):
            return
        for client in self.planned:
            if client.closed_by_app and client.session is not None:
                # Its app may still be in its disconnect handling: wait for it to finish.
                try:
                    await client.session.close()
                except BaseException:
                    self.script.check(f"await {client.name}.close()")
                    raise
        # Other workers may still be delivering what the last client's app sent.
        self.script.before_check(await self.settle())
        self.check_at_rest()

    def check_at_rest(self, *, after: bool = False) -> None:
        apps = [app for app in self.apps if isinstance(app, App)] if self.spec.check_at_rest else []
        checks: list[tuple[Callable[..., None], tuple[Any, ...], str]] = []
        if apps:
            names = ", ".join(self.app_name(self.apps.index(app)) for app in apps)
            checks.append((assert_app_at_rest, tuple(apps), names))
        checks += [(hook, (), "") for hook in self.spec.hooks.at_rest]
        for check, args, names in checks:
            try:
                check(*args)
            except BaseException:
                self.script.check(f"{self.script.reference(check)}({names})", after=after)
                raise
