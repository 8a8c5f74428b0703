"""The machine finds each planted bug within a fixed budget, and shrinks it to a short test.

Every reproduction is then run on its own, in a fresh pytest process (one for all the
reproductions of a backend), several times, and must fail with the same exception each time:
what the user pastes is what the machine saw, not a race it happened to win.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from panther_ws.protocol.asgi import ASGIProtocolError
from panther_ws_testing import ReceiveTimeout
from panther_ws_testing.fuzz import (
    DEFAULT_SETTINGS,
    ConversationMachine,
    Endpoint,
    FuzzReport,
    fuzz_app,
)
from tests.fuzz import apps

ROOT = Path(__file__).resolve().parents[2]
# A fixed seed (derandomize=True), no example database, short conversations.
BUDGET = settings(DEFAULT_SETTINGS, stateful_step_count=8)
MAX_EXAMPLES = 60
MAX_STEPS = 5
SHRINK_SECONDS = 1.0
REPLAYS = 3  # copies of each reproduction run, each must fail alike


@dataclass(frozen=True)
class PlantedBug:
    name: str
    expected: type[BaseException]
    machine: Callable[[str], type[ConversationMachine]]  # backend -> machine

    def __str__(self) -> str:
        return self.name


def crash_machine(backend: str) -> type[ConversationMachine]:
    values = st.lists(st.integers(0, 9), max_size=3) | st.dictionaries(st.just("id"), st.integers())
    orders = values.map(lambda value: orjson.dumps(value).decode())
    return fuzz_app(
        apps.crashing_app, [Endpoint("/ws/orders/", messages=orders)], backend=backend, timeout=0.5
    )


def leak_machine(backend: str) -> type[ConversationMachine]:
    machine = fuzz_app(
        apps.leaky_app, ["/ws/rooms/<room>/"], backend=backend, timeout=0.5, reset=apps.empty_rooms
    )
    machine.at_rest(apps.rooms_are_empty)
    return machine


def goodbye_machine(backend: str) -> type[ConversationMachine]:
    words = st.sampled_from(["hi", "bye", "later"])
    return fuzz_app(
        apps.goodbye_app, [Endpoint("/chat", messages=words)], backend=backend, timeout=0.5
    )


def silent_machine(backend: str) -> type[ConversationMachine]:
    # A small timeout: every replay of the hang waits for it. Half the messages binary: with
    # the default strategy whether 60 examples send one depends on the constants Hypothesis
    # collects from every imported module, that is on which tests ran before.
    messages = st.text(max_size=4) | st.binary(max_size=4)
    return fuzz_app(
        apps.silent_app,
        [Endpoint("/echo", messages=messages, replies=True)],
        backend=backend,
        timeout=0.05,
    )


def relay_machine(backend: str) -> type[ConversationMachine]:
    return fuzz_app(
        apps.make_relay,
        ["/ws/relay/"],
        workers=2,
        backend=backend,
        timeout=0.5,
        reset=apps.forget_peers,
    )


def notes_machine(backend: str) -> type[ConversationMachine]:
    return fuzz_app(
        apps.notes_app,
        [Endpoint("/notes", messages=st.sampled_from(["a", "b"]))],
        backend=backend,
        timeout=0.5,
        reset=apps.forget_notes,
    )


PLANTED = [
    PlantedBug("a crash on one message shape", IndexError, crash_machine),
    PlantedBug("a membership leaked by a client that drops", AssertionError, leak_machine),
    PlantedBug("a send after close", ASGIProtocolError, goodbye_machine),
    PlantedBug("a message kind never answered", ReceiveTimeout, silent_machine),
    PlantedBug("a cross-worker send to a departed connection", KeyError, relay_machine),
    PlantedBug("a message handled after the next client came", IndexError, notes_machine),
]


@pytest.fixture(scope="session")
def found() -> Callable[[PlantedBug, str], FuzzReport]:
    """Each bug is fuzzed once per backend, however many tests look at the report."""

    @functools.cache
    def find(bug: PlantedBug, backend: str) -> FuzzReport:
        return bug.machine(backend).run(
            max_examples=MAX_EXAMPLES, settings=BUDGET, shrink_seconds=SHRINK_SECONDS
        )

    return find


@pytest.fixture(scope="session")
def replayed(
    found: Callable[[PlantedBug, str], FuzzReport], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], dict[str, str]]:
    """Every reproduction of a backend, run in one fresh pytest process: file -> its failure.

    ``output`` is what that pytest printed, for the message of a test that fails.
    """

    @functools.cache
    def replay(backend: str) -> dict[str, str]:
        directory = tmp_path_factory.mktemp(f"repros-{backend}")
        for index, bug in enumerate(PLANTED):
            for copy in range(REPLAYS):
                repro = found(bug, backend).repro or ""
                (directory / f"test_repro_{index}_{copy}.py").write_text(repro)
        results = directory / "results.xml"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={results}",
                str(directory),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        failures = {"output": run.stdout[-3000:] + run.stderr[-3000:]}
        for case in ElementTree.parse(results).getroot().iter("testcase"):
            failure = case.find("failure")
            module = case.get("classname", "").rsplit(".", 1)[-1]
            failures[module] = "" if failure is None else failure.get("message", "")
        return failures

    return replay


@pytest.mark.parametrize("bug", PLANTED, ids=str)
def test_the_machine_finds_the_planted_bug(
    bug: PlantedBug, anyio_backend: str, found: Callable[[PlantedBug, str], FuzzReport]
) -> None:
    report = found(bug, anyio_backend)
    assert isinstance(report.failure, bug.expected), report.summary()


@pytest.mark.parametrize("bug", PLANTED, ids=str)
def test_the_failure_shrinks_to_a_short_test(
    bug: PlantedBug, anyio_backend: str, found: Callable[[PlantedBug, str], FuzzReport]
) -> None:
    report = found(bug, anyio_backend)
    assert report.steps is not None, report.summary()
    assert report.steps <= MAX_STEPS, report.summary()


@pytest.mark.parametrize("bug", PLANTED, ids=str)
def test_the_printed_test_fails_the_same_way_on_its_own(
    bug: PlantedBug, anyio_backend: str, replayed: Callable[[str], dict[str, str]]
) -> None:
    results = replayed(anyio_backend)
    for copy in range(REPLAYS):
        failure = results.get(f"test_repro_{PLANTED.index(bug)}_{copy}", "")
        assert failure.split(":")[0].rsplit(".", 1)[-1] == bug.expected.__name__, results["output"]
