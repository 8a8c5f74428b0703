"""``await settle()``: wait until what the last step set off has run its course.

Two clients' steps race when the second starts before the app has handled the first (an app
task still runnable, a broker delivery queued), and trio even shuffles runnable tasks on
purpose. Settling between two clients' steps makes a conversation, and the test it is printed
as, run the same way every time: each step starts from a loop where every task waits.
"""

from __future__ import annotations

import asyncio
import math

import anyio
import sniffio

# A task that never stops yielding (a busy loop) would keep the loop from ever settling:
# after this many rounds, go on as if it had.
_MAX_ROUNDS = 1000
DEFAULT_TIMEOUT = 1.0  # the fuzzing machine's default bound of a wait too


async def settle(*, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Return once every other task of the loop is blocked (waiting for input or a timer).

    Never waits past ``timeout`` (None: no bound), nor more than a bounded number of
    scheduling rounds, so an app that never stops working cannot hang a test here.
    """
    with anyio.move_on_after(math.inf if timeout is None else timeout):
        if sniffio.current_async_library() == "trio":
            import trio.testing

            await trio.testing.wait_all_tasks_blocked()
            return
        this = asyncio.current_task()
        for _ in range(_MAX_ROUNDS):
            await asyncio.sleep(0)
            if all(task is this or _blocked(task) for task in asyncio.all_tasks()):
                return


def _blocked(task: asyncio.Task[object]) -> bool:
    # What anyio's asyncio backend reads too: the future the task waits on, if any.
    waiter: asyncio.Future[object] | None = getattr(task, "_fut_waiter", None)
    return waiter is not None and not waiter.done()
