"""The machine's own behaviours: checks, extensions, the TestCase one-liner, bad arguments."""

from __future__ import annotations

import unittest

import pytest
from hypothesis import find, settings
from hypothesis import strategies as st

from panther_ws_testing import WebsocketTestClient
from panther_ws_testing.fuzz import (
    DEFAULT_ALLOWED,
    DEFAULT_SETTINGS,
    ConnectRequest,
    Endpoint,
    ForbiddenCloseCode,
    LeftBehind,
    allowing,
    assert_app_at_rest,
    fuzz_app,
)
from panther_ws_testing.fuzz.conversation import Client, Conversation, Open, Ping
from tests.fuzz import apps

BUDGET = settings(DEFAULT_SETTINGS, max_examples=100, stateful_step_count=8)
WORDS = st.sampled_from(["hi", "kick", "secret"])


def test_a_close_code_the_endpoint_may_not_send_is_a_failure(anyio_backend: str) -> None:
    endpoint = Endpoint("/ws", messages=WORDS, close_codes={1000})
    report = fuzz_app(apps.kicking_app, [endpoint], backend=anyio_backend).run(
        settings=BUDGET, shrink_seconds=1.0
    )

    assert isinstance(report.failure, ForbiddenCloseCode), report.summary()
    assert "closed '/ws' with code 4001" in str(report.failure)
    assert report.repro is not None
    assert "assert_close_code('/ws', (await ws1.wait_closed())[0], [1000])" in report.repro


def test_a_user_invariant_sees_the_transcripts_and_is_printed(anyio_backend: str) -> None:
    machine = fuzz_app(apps.kicking_app, [Endpoint("/ws", messages=WORDS)], backend=anyio_backend)
    machine.invariant(apps.no_secrets)
    report = machine.run(settings=BUDGET, shrink_seconds=1.0)

    assert isinstance(report.failure, AssertionError), report.summary()
    assert report.repro is not None
    assert "from tests.fuzz.apps import kicking_app as app, no_secrets" in report.repro
    assert "no_secrets([ws1" in report.repro


def test_a_user_rule_is_a_step_of_its_own(anyio_backend: str) -> None:
    machine = fuzz_app(apps.starlette_app, [Endpoint("/ws/<name>")], backend=anyio_backend)
    machine.rule(word=st.sampled_from(["ok", "OK"]))(apps.whisper)
    report = machine.run(settings=BUDGET, shrink_seconds=1.0)

    assert isinstance(report.failure, AssertionError), report.summary()
    assert report.repro is not None
    assert "from tests.fuzz.apps import starlette_app as app, whisper" in report.repro
    # Shrinking is bounded by time, so on a loaded machine it may stop at a longer
    # conversation ('ok' after an unread echo) instead of the shortest ('OK' alone).
    assert "await whisper(ws1, word=" in report.repro


def test_allowed_exceptions_end_their_connection_and_the_run_goes_on(anyio_backend: str) -> None:
    endpoint = Endpoint("/ws", messages=st.sampled_from(["text", b"bytes"]))
    strict = fuzz_app(apps.picky_app, [endpoint], backend=anyio_backend).run(
        settings=BUDGET, shrink_seconds=1.0
    )
    assert isinstance(strict.failure, ValueError), strict.summary()

    lenient = fuzz_app(
        apps.picky_app,
        [endpoint],
        backend=anyio_backend,
        allowed_exceptions=[*DEFAULT_ALLOWED, ValueError],
    ).run(settings=BUDGET, shrink_seconds=1.0)
    assert lenient.ok, lenient.summary()


@pytest.mark.anyio
async def test_allowing_turns_the_exception_into_a_1011_close() -> None:
    async with WebsocketTestClient(allowing(apps.picky_app, ValueError)) as client:
        async with client.connect("/ws") as ws:
            await ws.send(b"bytes")
            assert await ws.wait_closed() == (1011, "")


@pytest.mark.anyio
async def test_an_app_holding_a_connection_is_not_at_rest() -> None:
    async with WebsocketTestClient(apps.leaky_app) as client:
        async with client.connect("/ws/rooms/a/") as ws:
            await ws.send("hello")
            assert await ws.receive() == "hello"  # the app has registered the connection
            with pytest.raises(LeftBehind, match="still holds 1 connection"):
                assert_app_at_rest(apps.leaky_app)
        assert_app_at_rest(apps.leaky_app)


def test_at_rest_takes_panther_ws_apps_only() -> None:
    with pytest.raises(TypeError, match="takes panther_ws Apps"):
        assert_app_at_rest(apps.starlette_app)  # type: ignore[arg-type]


def test_the_test_case_one_liner_passes_for_a_correct_app() -> None:
    machine = fuzz_app(apps.starlette_app, ["/ws/<name>"])
    test_case = machine.TestCase
    test_case.settings = BUDGET
    result = unittest.TestResult()
    test_case().run(result)
    assert result.wasSuccessful(), result.errors + result.failures


def test_the_test_case_one_liner_fails_with_the_repro_for_a_buggy_app() -> None:
    machine = fuzz_app(apps.kicking_app, [Endpoint("/ws", messages=WORDS, close_codes={1000})])
    test_case = machine.TestCase
    test_case.settings = BUDGET
    test_case.shrink_seconds = 1.0
    result = unittest.TestResult()
    test_case().run(result)
    ((_, traceback),) = result.failures
    assert "ForbiddenCloseCode" in traceback
    assert "async def test_conversation_found_by_fuzzing():" in traceback


def test_an_app_no_module_holds_gets_an_explanation_instead_of_a_repro() -> None:
    async def nameless(scope: dict[str, object], receive: object, send: object) -> None:
        raise RuntimeError("boom")

    report = fuzz_app(nameless, ["/ws"]).run(settings=BUDGET, shrink_seconds=1.0)
    assert isinstance(report.failure, RuntimeError)
    assert report.repro is not None
    assert "cannot be printed as a test" in report.repro
    assert "is not a module-level name" in report.repro


def test_an_endpoint_names_only_its_own_variables() -> None:
    with pytest.raises(ValueError, match="has no path variable 'user'; its variables are"):
        Endpoint("/ws/<room>/", variables={"user": st.just("x")})


def test_both_pattern_spellings_fill_in_their_variables() -> None:
    panther = Endpoint("/ws/<room>/", variables={"room": st.just("a b")})
    starlette = Endpoint("/ws/{room:int}/x", variables={"room": st.just("7")})
    assert find(panther.requests, lambda request: True).path == "/ws/a%20b/"
    assert find(starlette.requests, lambda request: True).path == "/ws/7/x"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"endpoints": []}, "needs at least one endpoint"),
        ({"backend": "curio"}, "backend must be 'asyncio' or 'trio'"),
        ({"max_clients": 0}, "must be at least 1"),
        ({"workers": 2}, "app must be a callable"),
    ],
)
def test_bad_arguments_are_refused_at_once(arguments: dict[str, object], error: str) -> None:
    options: dict[str, object] = {"endpoints": ["/ws"], **arguments}
    with pytest.raises((ValueError, TypeError), match=error):
        fuzz_app(apps.leaky_app, **options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_ping_in_wire_mode_is_answered_and_written_as_a_step() -> None:
    machine = fuzz_app(apps.starlette_app, ["/ws/<name>"], wire=True)
    client = Client(machine.spec.endpoints[0], ConnectRequest("/ws/a"), worker=0)
    conversation = Conversation(
        machine.spec, [Open(client), Ping(client, b"are you there")], fragment_size=3
    )
    await conversation.play()
    assert conversation.script.body[-1] == "await ws1.ping(b'are you there')"
