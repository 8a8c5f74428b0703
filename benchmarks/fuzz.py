"""Conversation fuzzing against a hand-written Hypothesis loop over Starlette's TestClient.

    python benchmarks/fuzz.py [examples]

Both sides fuzz one Starlette echo app (``/ws/{name}``) with the *same* conversations: each
example is drawn by the same strategy, ``planning.conversations`` (up to 10 steps: the first
opens a client, then sends of ``st.text(max_size=20)``, receives, opens of up to 1 or 3
clients at once, closes with drawn codes and reasons, abrupt drops), with the same settings
(fixed seed, the same number of examples), so both play the same number of steps with the
same messages.

- **ours**: ``fuzz_app(app, [Endpoint(..., replies=True)], max_clients=k).run()``, the whole
  machine: drawing, playing each conversation on one loop with ``WebsocketTestClient``
  (direct, or wire: real frames through both cores, and then the plan also draws the wire
  faults: split bytes, pings, drops mid-message, pauses), settling between clients, every
  built-in check after each step, and the bookkeeping for shrinking and the repro.
- **Starlette**: what a user writes today: ``@given`` that strategy, a ``TestClient`` per
  example (``with TestClient(app)``), ``websocket_connect`` per open, ``send_text`` and
  ``receive_text`` of the echo per send and receive, ``close(code)`` per close or drop; no
  checks.

Then where the time goes, from the same plans: Hypothesis alone (``@given`` the strategy,
playing nothing: what any design built on it pays an example) and each player alone
(replaying conversations drawn beforehand, no Hypothesis). Examples per second, best of 3.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from panther_ws_testing.fuzz import DEFAULT_SETTINGS, ConversationMachine, Endpoint, fuzz_app
from panther_ws_testing.fuzz.conversation import Close, Conversation, Drop, Open, Receive, Send
from panther_ws_testing.fuzz.planning import conversations

MESSAGES = st.text(max_size=20)
RUNS = 3


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/ws/{name}", echo)])


def machine(clients: int, *, wire: bool) -> type[ConversationMachine]:
    endpoint = Endpoint("/ws/<name>", messages=MESSAGES, replies=True)
    return fuzz_app(app, [endpoint], max_clients=clients, wire=wire)


def ours(examples: int, clients: int, wire: bool) -> float:
    report = machine(clients, wire=wire).run(max_examples=examples)
    assert report.ok, report.summary()
    return report.examples / report.seconds


def play_with_starlette(conversation: Conversation) -> None:
    """The conversation, step by step, as a test over Starlette's TestClient writes it."""
    with TestClient(app) as client:
        sessions: dict[int, Any] = {}
        owed: dict[int, int] = {}
        for step in conversation.steps:
            key = id(step.client)
            if isinstance(step, Open):
                sessions[key] = client.websocket_connect(step.client.request.path).__enter__()
                owed[key] = 0
            elif isinstance(step, Send):
                sessions[key].send_text(step.message)
                owed[key] += 1
            elif isinstance(step, Receive) and owed[key]:
                sessions[key].receive_text()  # an echo: the same text
                owed[key] -= 1
            elif isinstance(step, Close | Drop):
                session = sessions.pop(key)
                session.close(step.code if isinstance(step, Close) else 1006)
                session.__exit__(None, None, None)
        for session in sessions.values():
            session.__exit__(None, None, None)


def hypothesis_loop(
    examples: int, clients: int, play: Callable[[Conversation], None] | None
) -> float:
    """``@given`` the machine's own strategy; ``play`` each example (None: play nothing)."""
    played = 0
    plans = conversations(machine(clients, wire=False).spec, DEFAULT_SETTINGS.stateful_step_count)

    @settings(DEFAULT_SETTINGS, max_examples=examples)
    @given(plans)
    def fuzz(conversation: Conversation) -> None:
        nonlocal played
        played += 1
        if play is not None:
            play(conversation)

    started = time.perf_counter()
    fuzz()
    return played / (time.perf_counter() - started)


def drawn(examples: int, clients: int) -> list[Conversation]:
    kept: list[Conversation] = []
    plans = conversations(machine(clients, wire=False).spec, DEFAULT_SETTINGS.stateful_step_count)

    @settings(DEFAULT_SETTINGS, max_examples=examples)
    @given(plans)
    def keep(conversation: Conversation) -> None:
        kept.append(conversation)

    keep()
    return kept


def players_alone(examples: int, clients: int) -> tuple[float, float]:
    """Examples per second of each player on conversations drawn beforehand."""
    plans = drawn(examples, clients)
    loop = asyncio.new_event_loop()
    started = time.perf_counter()
    for conversation in plans:
        fresh = Conversation(conversation.spec, conversation.steps, fragment_size=None)
        loop.run_until_complete(fresh.play())
    mine = len(plans) / (time.perf_counter() - started)
    loop.close()
    started = time.perf_counter()
    for conversation in plans:
        play_with_starlette(conversation)
    return mine, len(plans) / (time.perf_counter() - started)


def best(measure: Callable[[], float]) -> float:
    return max(measure() for _ in range(RUNS))


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(f"{examples} examples per run, the same on both sides; best of {RUNS}, examples/s")
    print(f"{'':28}{'ours':>8}{'Starlette':>11}{'ratio':>8}")
    for clients in (1, 3):
        peer = best(functools.partial(hypothesis_loop, examples, clients, play_with_starlette))
        for wire in (False, True):
            rate = best(functools.partial(ours, examples, clients, wire))
            label = f"{'wire' if wire else 'direct'}, up to {clients} client(s)"
            print(f"{label:28}{rate:8.0f}{peer:11.1f}{rate / peer:7.1f}x")
    print("\nwhere the time goes (direct), examples/s:")
    print(f"{'':28}{'Hypothesis':>11}{'our player':>12}{'Starlette':>11}{'ceiling':>9}")
    for clients in (1, 3):
        draw_only = best(functools.partial(hypothesis_loop, examples, clients, None))
        mine, theirs = max(players_alone(examples, clients) for _ in range(RUNS))
        # With Hypothesis's cost on both sides, no player can beat this ratio.
        ceiling = (1 / draw_only + 1 / theirs) / (1 / draw_only + 1 / mine)
        label = f"up to {clients} client(s)"
        print(f"{label:28}{draw_only:11.0f}{mine:12.0f}{theirs:11.0f}{ceiling:8.1f}x")
    print(
        "Hypothesis: @given the same strategy, playing nothing. Players: the same drawn\n"
        "conversations replayed without Hypothesis. Ceiling: the best ratio any player could\n"
        "reach over the Starlette loop while both pay Hypothesis's draw per example."
    )


if __name__ == "__main__":
    main()
