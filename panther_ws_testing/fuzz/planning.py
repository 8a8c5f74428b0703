"""How a conversation is drawn: one Hypothesis strategy for the whole plan.

Hypothesis's stateful engine chooses each step among rules, checks preconditions and draws
from bundles, which costs a few milliseconds an example before anything is played
(``benchmarks/fuzz.py`` measures it). A conversation needs none of that: it is a list of
steps, each a kind and what that kind draws, with the clients they go to tracked here. So
the plan is one strategy, as cheap as a list of tuples, that shrinks the same way: steps
deleted (a step left without its client does nothing), values made simpler, and
conversations shorter (the draw that ends one shrinks towards ending sooner).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson
from hypothesis import strategies as st

from panther_ws.protocol.close_codes import is_sendable_close_code
from panther_ws_testing import strategies
from panther_ws_testing.fuzz.conversation import (
    CallUserRule,
    Client,
    Close,
    Conversation,
    Drop,
    Open,
    Ping,
    Receive,
    Send,
    Spec,
    Step,
    UserRule,
)
from panther_ws_testing.fuzz.faults import PauseReading, ResumeReading, SendRaw

# What an endpoint may close with, in one draw (an index, not a filter, which would reject
# half of 1000-4999), shrinking towards 1000; reasons of at most 5 characters fit a frame.
_SENDABLE = [code for code in range(1000, 5000) if is_sendable_close_code(code)]
_CLOSE_CODES = st.integers(0, len(_SENDABLE) - 1).map(_SENDABLE.__getitem__)
_CLOSE_REASONS = strategies.text_messages(max_size=5)
FRAGMENT_SIZES = st.none() | st.integers(1, 64)
_PING_PAYLOADS = st.binary(max_size=125)
_MASK = b"\x00\x00\x00\x00"  # any key is valid: this one leaves a printed frame readable
_TEXT, _BINARY, _CONTINUATION, _PING = 0x1, 0x2, 0x0, 0x9


@dataclass
class PlanState:
    """The clients a plan has open so far, as its steps will leave them."""

    open: list[Client] = field(default_factory=list)
    paused: set[int] = field(default_factory=set)  # id() of clients that stopped reading

    def reading(self) -> list[Client]:
        return [client for client in self.open if id(client) not in self.paused]

    def leave(self, client: Client) -> None:
        self.open.remove(client)
        self.paused.discard(id(client))


Kind = Callable[[st.DrawFn, PlanState], Step | None]


def conversations(spec: Spec, max_steps: int) -> st.SearchStrategy[Conversation]:
    """Conversations of at most ``max_steps`` steps with ``spec``'s app, the first an open."""
    open_, kinds = step_kinds(spec)
    # One draw before each step but the first: 0 ends the conversation (so it shrinks
    # shorter), another number is the kind of the next step (shrinking towards sends).
    next_kind = st.integers(0, len(kinds))

    @st.composite
    def plan(draw: st.DrawFn) -> Conversation:
        fragment_size = draw(FRAGMENT_SIZES) if spec.wire else None
        state = PlanState()
        steps: list[Step] = []
        for index in range(max_steps):
            chosen = draw(next_kind) if index else 1
            if not chosen:
                break
            step = (kinds[chosen - 1] if state.open else open_)(draw, state)
            if step is not None:
                steps.append(step)
        return Conversation(spec, steps, fragment_size=fragment_size)

    return plan()


def step_kinds(spec: Spec) -> tuple[Kind, list[Kind]]:
    """The kind that opens a client, and every kind of step (the first: where shrinking goes).

    Shared by :func:`conversations` and the stateful form of a machine
    (:mod:`~panther_ws_testing.fuzz.stateful`), so both plan the same steps.
    """
    open_ = _opener(spec)
    return open_, _kinds(spec, open_)


def _opener(spec: Spec) -> Kind:
    """The kind that opens a client (the first step, and any step while none is open)."""
    requests = st.one_of([st.tuples(st.just(e), e.requests) for e in spec.endpoints])
    workers = st.integers(0, spec.workers - 1)

    def open_(draw: st.DrawFn, state: PlanState) -> Step | None:
        if len(state.open) >= spec.max_clients:
            return None
        endpoint, request = draw(requests)
        client = Client(endpoint, request, draw(workers) if spec.workers > 1 else 0)
        state.open.append(client)
        return Open(client)

    return open_


def _kinds(spec: Spec, open_: Kind) -> list[Kind]:
    """Every kind of step; the first ones are where shrinking goes."""

    def send(draw: st.DrawFn, state: PlanState) -> Step:
        client = _pick(draw, state.open)
        return Send(client, draw(client.endpoint.messages))

    def receive(draw: st.DrawFn, state: PlanState) -> Step | None:
        client = _pick(draw, state.reading())
        return None if client is None else Receive(client)

    def close(draw: st.DrawFn, state: PlanState) -> Step:
        client = _pick(draw, state.open)
        state.leave(client)
        return Close(client, draw(_CLOSE_CODES), draw(_CLOSE_REASONS))

    def drop(draw: st.DrawFn, state: PlanState) -> Step:
        client = _pick(draw, state.open)
        state.leave(client)
        return Drop(client)

    kinds = [send, receive, open_, close, drop]
    if spec.wire:
        kinds += _wire_kinds()
    kinds += [_user_rule(rule, arguments) for rule, arguments in spec.hooks.rules]
    return kinds


def _wire_kinds() -> list[Kind]:
    """Faults on the bytes: split frames, pings between fragments, drops, a client not reading."""

    def send_raw(draw: st.DrawFn, state: PlanState) -> Step:
        client = _pick(draw, state.open)
        message = draw(client.endpoint.messages)
        return SendRaw(client, message, _cut(draw, _frames(draw, message), whole=True))

    def drop_mid_message(draw: st.DrawFn, state: PlanState) -> Step:
        client = _pick(draw, state.open)
        state.leave(client)
        message = draw(client.endpoint.messages)
        start = _cut(draw, _frames(draw, message), whole=False)
        return SendRaw(client, message, start, then_drop=True)

    def ping(draw: st.DrawFn, state: PlanState) -> Step | None:
        client = _pick(draw, state.reading())
        return None if client is None else Ping(client, draw(_PING_PAYLOADS))

    def pause(draw: st.DrawFn, state: PlanState) -> Step | None:
        client = _pick(draw, state.reading())
        if client is None:
            return None
        state.paused.add(id(client))
        return PauseReading(client)

    def resume(draw: st.DrawFn, state: PlanState) -> Step | None:
        client = _pick(draw, [c for c in state.open if id(c) in state.paused])
        if client is None:
            return None
        state.paused.discard(id(client))
        return ResumeReading(client)

    return [send_raw, ping, drop_mid_message, pause, resume]


def _user_rule(rule: UserRule, arguments: Mapping[str, st.SearchStrategy[Any]]) -> Kind:
    drawn = st.fixed_dictionaries(dict(arguments))

    def kind(draw: st.DrawFn, state: PlanState) -> Step | None:
        client = _pick(draw, state.reading())  # a rule may wait for an answer
        return None if client is None else CallUserRule(client, rule, draw(drawn))

    kind.__name__ = getattr(rule, "__name__", "rule")  # the rule's name in the stateful form
    return kind


def _pick(draw: st.DrawFn, clients: Sequence[Client]) -> Any:
    """One of ``clients`` (None if there is none), drawing only when there is a choice."""
    if len(clients) <= 1:
        return clients[0] if clients else None
    return clients[draw(st.integers(0, len(clients) - 1))]


def _frames(draw: st.DrawFn, message: Any) -> bytes:
    """``message`` as client frames: in up to 4 fragments, maybe with pings between them."""
    if isinstance(message, bytes):
        opcode, payload = _BINARY, message
    else:
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        opcode, payload = _TEXT, text.encode()
    count = draw(st.integers(1, max(1, min(4, len(payload)))))
    size = -(-len(payload) // count) if payload else 1
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    out = bytearray()
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        out += strategies.encode_frame(
            opcode if index == 0 else _CONTINUATION, piece, fin=last, mask=_MASK
        )
        if not last and draw(st.booleans()):
            out += strategies.encode_frame(_PING, draw(st.binary(max_size=8)), mask=_MASK)
    return bytes(out)


def _cut(draw: st.DrawFn, data: bytes, *, whole: bool) -> tuple[bytes, ...]:
    """``data`` written in pieces cut at any byte; without ``whole``, only a start of it."""
    end = len(data) if whole else draw(st.integers(1, len(data) - 1))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, end - 1)), max_size=3))))
    bounds = [0, *(c for c in cuts if c < end), end]
    return tuple(data[a:b] for a, b in pairwise(bounds))
