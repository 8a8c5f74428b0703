"""The tasks the apps under test run in: each reports its own end, even one that never ran."""

from __future__ import annotations

import anyio
import pytest

from panther_ws.hosting.primitives import Primitives
from panther_ws_testing._apps import AppTasks

pytestmark = pytest.mark.anyio


async def test_an_app_cancelled_before_its_first_step_is_not_waited_for() -> None:
    ran: list[str] = []

    async def app() -> None:
        ran.append("app")
        await anyio.sleep_forever()

    with anyio.fail_after(1):  # waiting for it would take the whole timeout, then fail
        async with AppTasks(Primitives(), timeout=30) as tasks:
            task = tasks.start(app(), "never stepped")
    # asyncio never starts it; trio starts every task, and cancels it at its first await
    assert ran == ([] if not task.started else ["app"])
    assert not task.abandoned


async def test_an_app_that_ran_is_waited_for_until_it_ends() -> None:
    ended: list[str] = []

    async def app() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
            ended.append("cleaned up")

    async with AppTasks(Primitives(), timeout=5) as tasks:
        task = tasks.start(app(), "running")
        await anyio.sleep(0.01)
        assert task.started
    assert ended == ["cleaned up"]
