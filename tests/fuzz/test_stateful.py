"""``Machine.StateMachine``: the same conversations as a Hypothesis ``RuleBasedStateMachine``."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from panther_ws_testing.fuzz import DEFAULT_SETTINGS, Endpoint, fuzz_app
from tests.fuzz import apps

BUDGET = settings(DEFAULT_SETTINGS, max_examples=60, stateful_step_count=8)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_state_machine_finds_a_crash_and_notes_the_test_to_paste(backend: str) -> None:
    orders = st.lists(st.integers(0, 9), max_size=3).map(lambda v: orjson.dumps(v).decode())
    machine = fuzz_app(
        apps.crashing_app, [Endpoint("/ws/orders/", messages=orders)], backend=backend, timeout=0.5
    )
    assert issubclass(machine.StateMachine, RuleBasedStateMachine)
    with pytest.raises(IndexError) as failure:
        run_state_machine_as_test(machine.StateMachine, settings=BUDGET)
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    assert "async def test_" in notes
    assert "WebsocketTestClient(" in notes


@pytest.mark.parametrize("wire", [False, True])
def test_the_state_machine_has_a_rule_per_step_kind_and_runs_a_correct_app_clean(
    wire: bool,
) -> None:
    machine = fuzz_app(apps.starlette_app, ["/ws/<name>"], wire=wire)
    rules = {name for name in dir(machine.StateMachine) if not name.startswith("_")}
    assert {"open", "send", "receive", "close", "drop"} <= rules
    assert ({"send_raw", "ping", "pause", "resume"} <= rules) is wire
    run_state_machine_as_test(machine.StateMachine, settings=settings(BUDGET, max_examples=15))


def test_a_subclass_adds_its_own_hypothesis_rule() -> None:
    machine = fuzz_app(apps.starlette_app, ["/ws/<name>"])
    calls: list[int] = []

    class Extended(machine.StateMachine):  # type: ignore[misc,name-defined]
        @rule(number=st.integers(0, 3))
        def count(self, number: int) -> None:
            calls.append(number)

    run_state_machine_as_test(Extended, settings=settings(BUDGET, max_examples=10))
    assert calls
