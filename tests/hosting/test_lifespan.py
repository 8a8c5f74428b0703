"""The lifespan runner's three modes, as uvicorn reads an app's lifespan scope."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from panther_ws.hosting.lifespan import LifespanError, LifespanMode, LifespanRunner
from panther_ws.hosting.types import ASGIMessage, Receive, Scope, Send

pytestmark = pytest.mark.anyio

UNSUPPORTED = "ASGI 'lifespan' protocol appears unsupported"


async def no_route_for_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """What a bare Channels ``URLRouter`` does with a lifespan scope."""
    raise ValueError(f"No route found for path {scope.get('path', '')!r}.")


async def returns_without_answering(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def answers_failed(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


async def complete(scope: Scope, receive: Receive, send: Send) -> None:
    events.clear()
    message: ASGIMessage = await receive()
    scope["state"]["db"] = "ready"
    events.append(message["type"])
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    events.append(message["type"])
    await send({"type": "lifespan.shutdown.complete"})


events: list[str] = []


async def run(app: Any, mode: LifespanMode) -> LifespanRunner:
    """Startup then shutdown of ``app`` in ``mode``, as a server runs them.

    What they raise is raised outside the task group, as the server does, so the test sees
    the error itself rather than an ExceptionGroup.
    """
    runner = LifespanRunner(app, timeout=5, mode=mode)
    error: Exception | None = None
    async with anyio.create_task_group() as task_group:
        try:
            await runner.startup(task_group)
            await runner.shutdown()
        except Exception as exc:
            error = exc
        task_group.cancel_scope.cancel()  # a lifespan still waiting for shutdown stops here
    if error is not None:
        raise error
    return runner


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_a_lifespan_that_completes_runs_both_phases_and_fills_the_state(
    mode: LifespanMode,
) -> None:
    runner = await run(complete, mode)
    assert runner.supported
    assert runner.state == {"db": "ready"}
    assert events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.parametrize("app", [no_route_for_lifespan, returns_without_answering])
async def test_auto_reads_a_raising_or_silent_lifespan_as_unsupported_in_one_log_line(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="panther_ws.lifespan"):
        runner = await run(app, "auto")
    assert not runner.supported
    assert runner.state == {}
    logged = [record for record in caplog.records if record.name == "panther_ws.lifespan"]
    assert [record.levelno for record in logged] == [logging.INFO]
    assert UNSUPPORTED in logged[0].getMessage()
    assert logged[0].exc_info is None  # no traceback for an app that simply has no lifespan


async def test_auto_names_what_the_app_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="panther_ws.lifespan"):
        await run(no_route_for_lifespan, "auto")
    assert "ValueError(\"No route found for path ''.\")" in caplog.text


async def test_on_makes_a_raising_lifespan_an_error_with_the_app_exception_as_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(LifespanError, match="lifespan 'on': the app raised ValueError") as error:
        await run(no_route_for_lifespan, "on")
    assert isinstance(error.value.__cause__, ValueError)
    (logged,) = [record for record in caplog.records if record.name == "panther_ws.lifespan"]
    assert logged.levelno == logging.ERROR
    assert logged.exc_info is not None
    assert logged.exc_info[1] is error.value.__cause__


async def test_on_makes_a_lifespan_that_returns_without_answering_an_error() -> None:
    with pytest.raises(
        LifespanError, match=r"lifespan 'on': the app returned without answering lifespan\.startup"
    ):
        await run(returns_without_answering, "on")


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_is_an_error_in_every_mode_that_runs_it(mode: LifespanMode) -> None:
    with pytest.raises(LifespanError, match="lifespan startup failed: no database"):
        await run(answers_failed, mode)


@pytest.mark.parametrize("app", [complete, no_route_for_lifespan, answers_failed])
async def test_off_never_opens_the_lifespan_scope(app: Any) -> None:
    events.clear()
    runner = await run(app, "off")
    assert not runner.supported
    assert runner.state == {}
    assert events == []


async def test_off_run_returns_at_once_for_embedders_that_start_it_themselves() -> None:
    runner = LifespanRunner(complete, mode="off")
    events.clear()
    with anyio.fail_after(1):
        await runner.run()
        await runner.startup()
    assert events == []


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_an_exception_that_escaped_the_lifespan_task_is_never_read_as_unsupported(
    mode: LifespanMode,
) -> None:
    runner = LifespanRunner(returns_without_answering, mode=mode)
    runner.fail(KeyboardInterrupt())  # what the test client hands over from its own task
    with pytest.raises(KeyboardInterrupt):
        await runner.startup()


async def test_a_raise_after_startup_completed_fails_the_shutdown_in_auto_too() -> None:
    async def crashes_later(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise ConnectionError("database gone")

    with pytest.raises(ConnectionError, match="database gone"):
        await run(crashes_later, "auto")


def test_an_unknown_mode_is_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="lifespan mode must be 'auto', 'on' or 'off', got 'yes'"):
        LifespanRunner(complete, mode="yes")  # type: ignore[arg-type]


def ends_after_startup(error: Exception | None, ended: anyio.Event) -> Any:
    """A lifespan that completes startup, then returns (or raises ``error``) at once."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            if error is not None:
                raise error
        finally:
            ended.set()  # the runner's task sees the end before the test resumes

    return app


async def test_a_lifespan_that_returns_right_after_startup_complete_needs_no_shutdown() -> None:
    ended = anyio.Event()
    runner = LifespanRunner(ends_after_startup(None, ended), mode="on")
    async with anyio.create_task_group() as task_group:
        await runner.startup(task_group)
        await ended.wait()
        await runner.shutdown()
    assert runner.supported


async def test_a_lifespan_that_raised_after_startup_fails_the_shutdown() -> None:
    ended = anyio.Event()
    runner = LifespanRunner(ends_after_startup(ConnectionError("database gone"), ended))
    async with anyio.create_task_group() as task_group:
        await runner.startup(task_group)
        await ended.wait()
        with pytest.raises(ConnectionError, match="database gone"):
            await runner.shutdown()
