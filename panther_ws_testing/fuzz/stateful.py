"""The same conversations as a Hypothesis ``RuleBasedStateMachine``, for its own tooling.

:meth:`ConversationMachine.run` draws a whole conversation at once, because Hypothesis's
stateful engine costs milliseconds an example (``benchmarks/fuzz.py``). This form trades that
speed for the engine's interface: each step kind is a ``@rule`` (``open``, ``send``,
``receive``, ``close``, ``drop``, and in wire mode the faults), so a subclass can add its own
``@rule``\\ s, ``@precondition``\\ s and ``@invariant``\\ s, and ``run_state_machine_as_test``
or ``.TestCase`` run it like any other machine. Rules plan; ``teardown`` plays the planned
conversation, with every built-in check, exactly as ``run()`` would, so a failure shrinks to
the same kind of conversation and its note carries the same printed test.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from panther_ws_testing.fuzz.conversation import Conversation, Spec, Step
from panther_ws_testing.fuzz.planning import FRAGMENT_SIZES, Kind, PlanState, step_kinds
from panther_ws_testing.fuzz.playing import event_loop
from panther_ws_testing.fuzz.repro import render


class ConversationStateMachine(RuleBasedStateMachine):
    """Plans a conversation rule by rule and plays it at teardown (``Machine.StateMachine``)."""

    spec: ClassVar[Spec]

    def __init__(self) -> None:
        super().__init__()
        self.plan_state = PlanState()
        self.steps: list[Step] = []
        self.fragment_size: int | None = None

    @initialize(data=st.data())
    def choose_fragment_size(self, data: st.DataObject) -> None:
        if self.spec.wire:
            self.fragment_size = data.draw(FRAGMENT_SIZES)

    def plan(self, kind: Kind, data: st.DataObject) -> None:
        """Add the step ``kind`` draws, if it has one to add in this state."""
        step = kind(cast(st.DrawFn, data.draw), self.plan_state)
        if step is not None:
            self.steps.append(step)

    @property
    def conversation(self) -> Conversation:
        return Conversation(self.spec, self.steps, fragment_size=self.fragment_size)

    def teardown(self) -> None:
        if not self.steps:
            return
        conversation = self.conversation
        try:
            with event_loop(self.spec.backend) as play:
                play(conversation.play)
        except Exception as failure:
            if hasattr(failure, "add_note"):  # Python 3.11+: pytest shows it
                failure.add_note(
                    f"The failing conversation, as a test:\n\n{render(conversation, failure)}"
                )
            raise


def state_machine(spec: Spec, name: str, run_settings: settings) -> type[ConversationStateMachine]:
    """A ``RuleBasedStateMachine`` subclass with one rule per step kind of ``spec``.

    While no client is open every rule opens one, as a drawn conversation does; its
    ``TestCase`` runs with ``run_settings``.
    """
    open_, kinds = step_kinds(spec)
    namespace: dict[str, Any] = {"spec": spec}
    for kind in [open_, *kinds]:
        rule_name = kind.__name__.rstrip("_")
        while rule_name in namespace:
            rule_name += "_"
        namespace[rule_name] = rule(data=st.data())(_planner(kind, open_))
    machine: type[ConversationStateMachine] = type(name, (ConversationStateMachine,), namespace)
    machine.TestCase.settings = run_settings
    return machine


def _planner(kind: Kind, open_: Kind) -> Any:
    def plan(self: ConversationStateMachine, data: st.DataObject) -> None:
        self.plan(kind if self.plan_state.open else open_, data)

    plan.__name__ = kind.__name__
    return plan
