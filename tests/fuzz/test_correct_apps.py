"""On correct apps the machine runs its whole budget clean: no false alarm to chase."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st

import examples.auth
import examples.chat
import examples.notifications
from panther_ws_testing.fuzz import DEFAULT_SETTINGS, ConversationMachine, Endpoint, fuzz_app
from tests.fuzz import apps

BUDGET = settings(DEFAULT_SETTINGS, max_examples=25, stateful_step_count=8)
NAMES = st.fixed_dictionaries({"name": st.sampled_from(["ann", "bob"])})
TOKENS = st.fixed_dictionaries({"token": st.sampled_from(["s3cret", "guest", "wrong"])})


@dataclass(frozen=True)
class CorrectApp:
    name: str
    machine: Callable[[str], type[ConversationMachine]]

    def __str__(self) -> str:
        return self.name


CORRECT = [
    CorrectApp(
        "examples/chat.py",
        lambda backend: fuzz_app(
            examples.chat.app,
            [Endpoint("/ws/chat/<room>/", query_params=NAMES, replies=True)],
            backend=backend,
        ),
    ),
    CorrectApp(
        "examples/chat.py, wire",
        lambda backend: fuzz_app(
            examples.chat.app,
            [Endpoint("/ws/chat/<room>/", query_params=NAMES, replies=True)],
            wire=True,
            backend=backend,
        ),
    ),
    CorrectApp(
        "examples/auth.py, refusals allowed with 1008",
        lambda backend: fuzz_app(
            examples.auth.app,
            [
                Endpoint(path, query_params=TOKENS, close_codes={1000, 1008})
                for path in ("/ws/profile/", "/ws/admin/")
            ],
            backend=backend,
        ),
    ),
    CorrectApp(
        "examples/notifications.py, wire",
        lambda backend: fuzz_app(
            examples.notifications.app, ["/ws/notifications/"], wire=True, backend=backend
        ),
    ),
    CorrectApp(
        "a group broadcast over 2 workers",
        lambda backend: fuzz_app(
            apps.make_broadcast,
            [Endpoint("/ws/<room>/", variables={"room": st.sampled_from(["a", "b"])})],
            workers=2,
            backend=backend,
        ),
    ),
    CorrectApp(
        "Starlette, wire",
        lambda backend: fuzz_app(
            apps.starlette_app,
            [Endpoint("/ws/<name>", subprotocols=st.lists(st.sampled_from(["a", "b"])))],
            wire=True,
            backend=backend,
        ),
    ),
    CorrectApp(
        "FastAPI",
        lambda backend: fuzz_app(
            apps.fastapi_app,
            [
                Endpoint(
                    "/items/{item_id}",
                    variables={"item_id": st.integers(0, 99).map(str)},
                    messages=st.text(max_size=10),
                    replies=True,
                )
            ],
            backend=backend,
        ),
    ),
]


@pytest.mark.parametrize("case", CORRECT, ids=str)
def test_a_correct_app_runs_clean_for_the_budget(case: CorrectApp, anyio_backend: str) -> None:
    report = case.machine(anyio_backend).run(settings=BUDGET)
    assert report.ok, report.summary()
    assert report.examples >= BUDGET.max_examples
