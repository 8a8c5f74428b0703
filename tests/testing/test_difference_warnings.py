"""A ``ServerDifferenceWarning`` points at the test's line that opened the websocket.

The warning is raised in the app's task, where no frame is the test's; pointing at the
harness (``_apps.py``) would tell the test author nothing, so the session keeps the line
``connect()`` was called from, and, when that is no test's line, names the websocket.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import warnings
from typing import Any

import pytest

from panther_ws_testing import WebsocketRejected, WebsocketTestClient
from panther_ws_testing._differences import Behaviour, ServerDifferenceWarning
from panther_ws_testing.sync import SyncWebsocketTestClient
from tests.testing.apps import raises_while_open, returns_while_open


async def rejects_with_a_list_reason(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 1008, "reason": [{"loc": "q"}]})


def _only(record: list[warnings.WarningMessage]) -> warnings.WarningMessage:
    differences = [w for w in record if issubclass(w.category, ServerDifferenceWarning)]
    assert len(differences) == 1, [str(w.message) for w in differences]
    return differences[0]


@pytest.fixture(params=[False, True], ids=["direct", "wire"])
def wire(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.mark.anyio
async def test_returning_while_open_warns_at_the_connect_line(wire: bool) -> None:
    async with WebsocketTestClient(returns_while_open, lifespan="off", wire=wire) as client:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            line = sys._getframe().f_lineno + 1
            async with client.connect("/open") as ws:
                assert await ws.receive() == "hi"
                assert await ws.wait_closed() == (1000, "")
    warning = _only(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert str(warning.message) == Behaviour.RETURNED_WHILE_OPEN.value.message


@pytest.mark.anyio
async def test_raising_while_open_warns_at_the_connect_line(wire: bool) -> None:
    async with WebsocketTestClient(
        raises_while_open, lifespan="off", wire=wire, raise_app_exceptions=False
    ) as client:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            line = sys._getframe().f_lineno + 1
            ws = await client.connect("/raise")
            await ws.send("go")
            assert await ws.wait_closed() == (1011, "")
            await ws.close()
    warning = _only(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert str(warning.message) == Behaviour.RAISED_WHILE_OPEN.value.message


@pytest.mark.anyio
async def test_a_leniency_before_accept_warns_at_the_connect_line(wire: bool) -> None:
    async with WebsocketTestClient(rejects_with_a_list_reason, lifespan="off", wire=wire) as client:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            line = sys._getframe().f_lineno + 1
            connecting = client.connect("/list-reason")
            with pytest.raises(WebsocketRejected) as rejected:
                async with connecting:
                    pass
    assert rejected.value.status_code == 403
    warning = _only(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert str(warning.message) == Behaviour.NON_STR_CLOSE_REASON.value.message


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_sync_client_warns_at_the_with_line(backend: str) -> None:
    with SyncWebsocketTestClient(returns_while_open, backend=backend, lifespan="off") as client:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            line = sys._getframe().f_lineno + 1
            with client.connect("/sync") as ws:
                assert ws.receive() == "hi"
                assert ws.wait_closed() == (1000, "")
    warning = _only(record)
    assert (warning.filename, warning.lineno) == (__file__, line)


@pytest.mark.anyio
async def test_a_session_opened_from_no_tests_line_names_its_websocket() -> None:
    # As the fuzzing machine's sessions, opened from an event loop's or a library's frame:
    # code compiled as a file of the installed packages stands for one.
    library = os.path.join(sysconfig.get_path("purelib"), "some_library.py")
    opening = compile("client.connect('/from-a-library')", library, "eval")
    async with WebsocketTestClient(returns_while_open, lifespan="off") as client:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            async with eval(opening, {"client": client}) as ws:
                await ws.wait_closed()
    warning = _only(record)
    assert warning.filename != library
    assert str(warning.message) == (
        f"{Behaviour.RETURNED_WHILE_OPEN.value.message} (the websocket to '/from-a-library')"
    )
