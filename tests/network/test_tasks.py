"""The server's and the client's background tasks: what anyio's task group guarantees holds."""

from __future__ import annotations

import sys

import anyio
import pytest

from panther_ws.network.tasks import owned_tasks

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("sticky", [True, False])
async def test_a_task_that_raises_cancels_the_others_and_the_owner(sticky: bool) -> None:
    # The connections' tasks have no anyio task handles (~2 KiB each), but the task group's
    # guarantees: what one raises ends the rest and comes out of the owner.
    cancelled: list[str] = []

    async def waits() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append("task")
            raise

    async def fails() -> None:
        await anyio.sleep(0.01)
        raise RuntimeError("boom")

    with pytest.raises(BaseExceptionGroup) as raised:
        async with owned_tasks(sticky=sticky) as tasks:
            tasks.start_soon(waits)
            tasks.start_soon(fails)
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append("owner")
                raise
    assert [str(error) for error in raised.value.exceptions] == ["boom"]
    assert sorted(cancelled) == ["owner", "task"]


async def test_a_cancelled_task_stays_cancelled() -> None:
    # As in anyio's task group: an app that swallows one cancellation is cancelled again
    # at its next await, so shutdown cannot be held up by it.
    again: list[bool] = []

    async def stubborn() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            pass
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            again.append(True)
            raise

    with anyio.fail_after(2):
        async with owned_tasks() as tasks:
            tasks.start_soon(stubborn)
            await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()
    assert again == [True]


@pytest.mark.parametrize("sticky", [True, False])
async def test_leaving_waits_for_every_task(sticky: bool) -> None:
    done: list[int] = []

    async def short(number: int) -> None:
        await anyio.sleep(0.01 * number)
        done.append(number)

    async with owned_tasks(sticky=sticky) as tasks:
        for number in (2, 1, 3):
            tasks.start_soon(short, number)
    assert sorted(done) == [1, 2, 3]  # all of them, whatever a loaded machine's order


@pytest.mark.parametrize("sticky", [True, False])
async def test_a_task_started_after_cancelling_starts_cancelled(sticky: bool) -> None:
    reached: list[str] = []

    async def late() -> None:
        await anyio.sleep(5)
        reached.append("slept")

    with anyio.fail_after(2):
        async with owned_tasks(sticky=sticky) as tasks:
            tasks.cancel_scope.cancel()
            tasks.start_soon(late)
    assert reached == []


@pytest.mark.parametrize("sticky", [True, False])
async def test_cancelling_the_owner_cancels_the_tasks_and_waits_for_them(sticky: bool) -> None:
    cleaned: list[str] = []

    async def cleans_up() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
            cleaned.append("task")

    with anyio.move_on_after(0.05) as outer:
        async with owned_tasks(sticky=sticky) as tasks:
            tasks.start_soon(cleans_up)
            await anyio.sleep_forever()
    assert outer.cancelled_caught
    assert cleaned == ["task"]
