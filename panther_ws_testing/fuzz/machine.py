"""The machine that fuzzes conversations, and how a run is driven.

Each example draws a whole conversation (:func:`~panther_ws_testing.fuzz.planning.conversations`:
open, send, receive, close, drop, faults, user rules) and plays it in one task of one event
loop, by :class:`~panther_ws_testing.fuzz.conversation.Conversation`. So an example costs one
Hypothesis draw and one entry into the loop, runs exactly as its printed test does, and
Hypothesis shrinks the plan like any other: fewer steps, simpler messages, codes towards 1000.
"""

from __future__ import annotations

import time
import traceback
import unittest
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from panther_ws import App
from panther_ws.protocol.asgi import ClientDisconnected
from panther_ws_testing.fuzz.conversation import (
    AtRest,
    Conversation,
    Hooks,
    Invariant,
    Open,
    Spec,
    Step,
    UserRule,
)
from panther_ws_testing.fuzz.endpoints import Endpoint
from panther_ws_testing.fuzz.planning import conversations
from panther_ws_testing.fuzz.playing import Play, event_loop
from panther_ws_testing.fuzz.repro import render
from panther_ws_testing.fuzz.settling import DEFAULT_TIMEOUT
from panther_ws_testing.fuzz.stateful import ConversationStateMachine, state_machine

# What a send racing the client's departure raises, on every server: not the app's bug.
DEFAULT_ALLOWED: tuple[type[BaseException], ...] = (ClientDisconnected,)

# ``stateful_step_count`` bounds the steps of a conversation.
DEFAULT_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class FuzzReport:
    """What a run found: ``failure`` and its ``repro`` (a pytest file), or nothing."""

    examples: int
    seconds: float
    failure: BaseException | None = None
    repro: str | None = None
    steps: int | None = None  # of the reproduction

    @property
    def ok(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        rate = self.examples / self.seconds if self.seconds else 0.0
        text = f"{self.examples} conversations in {self.seconds:.1f} s ({rate:.0f}/s): "
        if self.failure is None:
            return text + "no failure"
        first_line = (str(self.failure).splitlines() or [""])[0][:200]
        return text + (
            f"{type(self.failure).__name__}: {first_line}\n"
            f"smallest failing conversation ({self.steps} steps), as a pytest test:\n\n"
            f"{self.repro}"
        )


class _ShrinkBudgetSpent(BaseException):
    """Ends Hypothesis's shrinking (it lets BaseExceptions through, as KeyboardInterrupt)."""


@dataclass
class _Run:
    """What one run shares across its examples: the loop, a count, the best failure so far.

    Hypothesis may shrink for hundreds of conversations; past ``shrink_seconds`` after the
    first failure the run stops it and keeps the shortest failing conversation it saw,
    which :func:`_minimize` then trims.
    """

    play: Play
    shrink_seconds: float | None
    examples: int = 0
    failure: BaseException | None = None
    conversation: Conversation | None = None
    failed_at: float = 0.0

    def found(self, failure: BaseException, conversation: Conversation) -> None:
        if self.failure is None:
            self.failed_at = time.perf_counter()
        elif _origin(failure) != _origin(self.failure):
            return  # another bug met while shrinking: keep to the first one
        elif self.conversation and len(conversation.steps) > len(self.conversation.steps):
            return
        self.failure, self.conversation = failure, conversation

    def converse(self, conversation: Conversation) -> None:
        """Play one drawn conversation: the body of the run's Hypothesis test."""
        if (
            self.failure is not None
            and self.shrink_seconds is not None
            and time.perf_counter() - self.failed_at > self.shrink_seconds
        ):
            raise _ShrinkBudgetSpent
        self.examples += 1
        try:
            self.play(conversation.play)
        except Exception as failure:
            self.found(failure, conversation)
            raise


class FuzzTestCase(unittest.TestCase):
    """What ``Machine.TestCase`` is: runs the machine, and raises what it found, with the repro.

    ``settings`` and ``shrink_seconds`` are as for :meth:`ConversationMachine.run`.
    """

    __test__ = False  # pytest collects the machine's own subclass, not this base
    machine: ClassVar[type[ConversationMachine]]
    settings: ClassVar[settings] = DEFAULT_SETTINGS
    shrink_seconds: ClassVar[float | None] = 10.0

    def runTest(self) -> None:
        report = self.machine.run(settings=self.settings, shrink_seconds=self.shrink_seconds)
        if report.failure is not None:
            raise report.failure


class _TestCaseProperty:
    def __get__(self, obj: object, owner: type[ConversationMachine]) -> type[FuzzTestCase]:
        return owner._test_case()


class _StateMachineProperty:
    def __get__(
        self, obj: object, owner: type[ConversationMachine]
    ) -> type[ConversationStateMachine]:
        return owner._state_machine()


class ConversationMachine:
    """Fuzzes conversations with the app of :attr:`spec`; made by :func:`fuzz_app`.

    Its own engine draws a conversation in one go, since Hypothesis's stateful engine
    chooses among rules step by step at a cost of milliseconds an example (see
    :mod:`~panther_ws_testing.fuzz.planning`); it is extended with the decorators below.
    :attr:`StateMachine` is the same machine as a ``RuleBasedStateMachine``, one rule per
    step kind, for Hypothesis's own ``@rule``/``@invariant`` and ``run_state_machine_as_test``.
    """

    spec: ClassVar[Spec]
    TestCase = _TestCaseProperty()
    StateMachine = _StateMachineProperty()
    _test_case_class: ClassVar[type[FuzzTestCase] | None] = None
    _state_machine_class: ClassVar[type[ConversationStateMachine] | None] = None

    # -- extending a machine -------------------------------------------------------------

    @classmethod
    def invariant(cls, function: Invariant) -> Invariant:
        """Decorator: ``function(sessions)`` runs after every step, with the open sessions.

        It raises (an ``assert``) to fail; each session's ``transcript`` is there to check.
        Define it at module level so the printed reproduction can import it.
        """
        cls.spec.hooks.invariants.append(function)
        return function

    @classmethod
    def at_rest(cls, function: AtRest) -> AtRest:
        """Decorator: ``function()`` runs whenever every client has left; raise to fail."""
        cls.spec.hooks.at_rest.append(function)
        return function

    @classmethod
    def rule(cls, **arguments: st.SearchStrategy[Any]) -> Callable[[UserRule], UserRule]:
        """Decorator: ``async function(session, **arguments)`` becomes a step of its own.

        Arguments are drawn from the given strategies; the rule is in every later run.
        """

        def add(function: UserRule) -> UserRule:
            cls.spec.hooks.rules.append((function, arguments))
            return function

        return add

    # -- running -------------------------------------------------------------------------

    @classmethod
    def run(
        cls,
        *,
        max_examples: int | None = None,
        seconds: float | None = None,
        shrink_seconds: float | None = 10.0,
        settings: settings | None = None,
    ) -> FuzzReport:
        """Fuzz and report; never raises for what the app does.

        ``max_examples`` alone: one reproducible Hypothesis run (fixed seed). With ``seconds``,
        batches of fresh random examples until the time is up (or ``max_examples`` ran).
        Shrinking a failure stops after ``shrink_seconds`` (None: when Hypothesis is done).
        """
        base = settings if settings is not None else DEFAULT_SETTINGS
        if max_examples is not None:
            base = _with(base, max_examples=max_examples)
        started = time.perf_counter()
        plans = conversations(cls.spec, base.stateful_step_count)
        with event_loop(cls.spec.backend) as play:
            run = _Run(play, shrink_seconds)
            try:
                for batch in _batches(base, seconds, started):
                    _fuzz(run, plans, batch)
            except (Exception, _ShrinkBudgetSpent):
                if run.failure is None or run.conversation is None:
                    raise  # not the app's doing: an error in the machine's setup
                smallest, conversation = _minimize(run.conversation, run.failure, play)
                repro = render(conversation, smallest)
                if hasattr(smallest, "add_note"):  # Python 3.11+: pytest shows it
                    smallest.add_note(f"The smallest failing conversation, as a test:\n\n{repro}")
                seconds = time.perf_counter() - started
                steps = conversation.script.steps
                return FuzzReport(run.examples, seconds, smallest, repro, steps)
        return FuzzReport(run.examples, time.perf_counter() - started)

    @classmethod
    def _test_case(cls) -> type[FuzzTestCase]:
        # One TestCase class per machine, made on first use, so its settings stick.
        test_case = cls.__dict__.get("_test_case_class")
        if test_case is None:
            name = f"{cls.__name__}.TestCase"
            namespace = {"machine": cls, "__qualname__": name, "__test__": True}
            test_case = type(name, (FuzzTestCase,), namespace)
            cls._test_case_class = test_case
        return test_case

    @classmethod
    def _state_machine(cls) -> type[ConversationStateMachine]:
        # Made on first use, after the decorators above added their rules and checks.
        machine = cls.__dict__.get("_state_machine_class")
        if machine is None:
            machine = state_machine(cls.spec, f"{cls.__name__}.StateMachine", DEFAULT_SETTINGS)
            cls._state_machine_class = machine
        return machine


def _minimize(
    conversation: Conversation, failure: BaseException, play: Play
) -> tuple[BaseException, Conversation]:
    """Drop steps while the conversation still fails at the same place.

    Hypothesis shrinks what is drawn, but a step it cannot delete without renumbering the
    clients after it (an open and its drop) often stays: replaying the plan without each
    client, then without each step, takes those out. Each try is a conversation or two.
    """
    origin = _origin(failure)
    improved = True
    while improved:
        improved = False
        for steps in _smaller(conversation.steps):
            smaller = _fails_alike(conversation, steps, origin, play)
            if smaller is not None:
                conversation, failure = smaller
                improved = True
                break
    return failure, conversation


# A smaller conversation must fail this many times in a row to replace the one it came
# from: one that fails only sometimes would print a flaky test.
_REPLAYS = 2


def _fails_alike(
    conversation: Conversation, steps: list[Step], origin: _Origin, play: Play
) -> tuple[Conversation, BaseException] | None:
    """``conversation`` cut down to ``steps`` and its failure, if it fails at ``origin``."""
    smaller: tuple[Conversation, BaseException] | None = None
    for _ in range(_REPLAYS):
        candidate = Conversation(conversation.spec, steps, fragment_size=conversation.fragment_size)
        try:
            play(candidate.play)
        except Exception as exc:
            if _origin(exc) == origin:
                smaller = smaller or (candidate, exc)
                continue
        return None
    return smaller


def _smaller(steps: Sequence[Step]) -> Iterator[list[Step]]:
    clients = list(dict.fromkeys(step.client for step in steps))
    for client in reversed(clients):
        yield [step for step in steps if step.client is not client]
    for index in reversed(range(len(steps))):
        if not isinstance(steps[index], Open):
            yield [*steps[:index], *steps[index + 1 :]]


_Origin = tuple[type[BaseException], str, int | None]


def _origin(failure: BaseException) -> _Origin:
    """Where a failure was raised: two failures from one place are one bug."""
    frames = traceback.extract_tb(failure.__traceback__)
    last = frames[-1] if frames else None
    return type(failure), last.filename if last else "", last.lineno if last else None


def _fuzz(run: _Run, plans: st.SearchStrategy[Conversation], batch: settings) -> None:
    """One Hypothesis run: each example a conversation, played by ``run``."""

    @settings(batch)
    @given(plans)
    def converse(conversation: Conversation) -> None:
        run.converse(conversation)

    converse()


def _with(base: settings, **changes: Any) -> settings:
    return settings(base, **changes)


def _batches(base: settings, seconds: float | None, started: float) -> Iterator[settings]:
    if seconds is None:
        yield base
        return
    remaining = base.max_examples
    while remaining > 0 and time.perf_counter() - started < seconds:
        size = min(remaining, 50)
        remaining -= size
        yield _with(base, max_examples=size, derandomize=False)


def fuzz_app(
    app: Any,
    endpoints: Sequence[Endpoint | str],
    *,
    workers: int = 1,
    wire: bool = False,
    max_clients: int = 3,
    timeout: float = DEFAULT_TIMEOUT,
    allowed_exceptions: Sequence[type[BaseException]] = DEFAULT_ALLOWED,
    check_at_rest: bool = True,
    reset: Callable[[], None] | None = None,
    backend: str = "asyncio",
) -> type[ConversationMachine]:
    """A machine fuzzing conversations with ``app``: ``TestChat = fuzz_app(...).TestCase``.

    ``endpoints`` are :class:`Endpoint`\\ s or bare URL patterns. With ``workers=N``, ``app`` is
    a callable ``(broker) -> App`` made N times on one ``MemoryBroker`` per conversation, and
    clients are spread over the workers, so cross-worker sends are fuzzed too. ``timeout``
    bounds every wait of a step. ``allowed_exceptions`` may escape the app: they end their
    connection with 1011, as on a server. :data:`DEFAULT_ALLOWED` is ``ClientDisconnected``
    alone, what a send racing the client's departure raises on every server (a conversation
    often ends with a close right after a send); extend it: ``[*DEFAULT_ALLOWED, ValueError]``.
    ``check_at_rest`` checks that panther_ws Apps hold no connection or group membership
    once every client left. ``reset()`` runs before each
    conversation (and first in a reproduction), for apps that keep state in globals.
    """
    if not endpoints:
        raise ValueError("fuzz_app() needs at least one endpoint, e.g. ['/ws/<room>/']")
    if backend not in ("asyncio", "trio"):
        raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
    if workers < 1 or max_clients < 1:
        raise ValueError(
            f"workers and max_clients must be at least 1, got {workers}, {max_clients}"
        )
    if workers > 1 and (isinstance(app, App) or not callable(app)):
        raise TypeError("with workers > 1, app must be a callable (broker) -> App")
    spec = Spec(
        app=app,
        endpoints=tuple(e if isinstance(e, Endpoint) else Endpoint(e) for e in endpoints),
        workers=workers,
        wire=wire,
        max_clients=max_clients,
        timeout=timeout,
        allowed_exceptions=tuple(allowed_exceptions),
        check_at_rest=check_at_rest,
        backend=backend,
        reset=reset,
        hooks=Hooks(),
    )
    name = getattr(app, "__name__", type(app).__name__)
    return type(f"Fuzz_{name}", (ConversationMachine,), {"spec": spec})
