"""Conversation fuzzing against a hand-written Hypothesis loop over Starlette's TestClient.

    python benchmarks/fuzz.py [examples]

Both fuzz one Starlette echo app with the same kind of conversation: open 1 (or up to 3)
clients, send generated text, receive the echoes, close. Ours is the whole machine
(``fuzz_app(...).run()``: planning, playing, the built-in checks), in direct and wire mode;
the peer is what a user writes today: ``@given`` a list of messages, a ``TestClient`` and
``websocket_connect`` per example. Examples per second, best of 3 runs each, and the ratio;
then the floor of any state machine: Hypothesis alone, with the same rules playing nothing.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    precondition,
    rule,
    run_state_machine_as_test,
)
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from panther_ws_testing.fuzz import DEFAULT_SETTINGS, Endpoint, fuzz_app

MESSAGES = st.text(max_size=20)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/ws/{name}", echo)])


def ours(examples: int, *, clients: int, wire: bool) -> float:
    machine = fuzz_app(
        app,
        [Endpoint("/ws/<name>", messages=MESSAGES, replies=True)],
        max_clients=clients,
        wire=wire,
    )
    report = machine.run(max_examples=examples)
    assert report.ok, report.summary()
    return report.examples / report.seconds


def starlette(examples: int, *, clients: int, wire: bool = False) -> float:
    played = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        names=st.lists(st.text("abc", min_size=1, max_size=8), min_size=1, max_size=clients),
        conversation=st.lists(st.tuples(st.integers(0, clients - 1), MESSAGES), max_size=10),
    )
    def conversation_echoes(names: list[str], conversation: list[tuple[int, str]]) -> None:
        nonlocal played
        played += 1
        with TestClient(app) as client:
            sessions = [client.websocket_connect(f"/ws/{name}") for name in names]
            opened = [session.__enter__() for session in sessions]
            for index, message in conversation:
                ws = opened[index % len(opened)]
                ws.send_text(message)
                assert ws.receive_text() == message
            for session in reversed(sessions):
                session.__exit__(None, None, None)

    started = time.perf_counter()
    conversation_echoes()
    return played / (time.perf_counter() - started)


class _EmptyMachine(RuleBasedStateMachine):
    """The floor: a state machine with the same rule shapes that plays nothing."""

    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.open_clients = 0
        self.played = 0

    @precondition(lambda self: self.open_clients < 3)
    @rule(target=clients, name=st.text("abc", min_size=1, max_size=8))
    def open(self, name: str) -> str:
        self.open_clients += 1
        return name

    @rule(client=clients, message=MESSAGES)
    def send(self, client: str, message: str) -> None:
        pass

    @rule(client=clients)
    def receive(self, client: str) -> None:
        pass

    @rule(client=consumes(clients), code=st.integers(1000, 4999))
    def close(self, client: str, code: int) -> None:
        self.open_clients -= 1

    def teardown(self) -> None:
        _EmptyMachine.examples += 1

    examples = 0


def hypothesis_floor(examples: int) -> float:
    _EmptyMachine.examples = 0
    started = time.perf_counter()
    run: Callable[..., None] = run_state_machine_as_test  # untyped in Hypothesis
    run(_EmptyMachine, settings=settings(DEFAULT_SETTINGS, max_examples=examples))
    return _EmptyMachine.examples / (time.perf_counter() - started)


def best_of(runs: int, measure: Callable[[], float]) -> float:
    return max(measure() for _ in range(runs))


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(f"{examples} examples per run, best of 3 (examples per second)")
    print(f"{'':24}{'ours':>10}{'Starlette':>12}{'ratio':>9}")
    for clients in (1, 3):
        peer = best_of(3, functools.partial(starlette, max(examples // 10, 10), clients=clients))
        for wire in (False, True):
            rate = best_of(3, functools.partial(ours, examples, clients=clients, wire=wire))
            label = f"{'wire' if wire else 'direct'}, {clients} client(s)"
            print(f"{label:24}{rate:10.0f}{peer:12.1f}{rate / peer:8.1f}x")
    floor = best_of(3, functools.partial(hypothesis_floor, examples))
    print(f"{'Hypothesis alone':24}{floor:10.0f}  (an empty state machine: the ceiling of ours)")


if __name__ == "__main__":
    main()
