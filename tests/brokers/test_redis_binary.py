"""Where the test harness finds a redis-server on a machine that has none from apt.

(These test ``panther_ws_testing._redis``; they sit beside the Redis tests they serve.)
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from panther_ws_testing._redis import BINARY_VARIABLE, RedisServer, find_redis_server

pytest_plugins = ["pytester"]


def test_a_pinned_binary_that_does_not_exist_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BINARY_VARIABLE, "/nonexistent/redis-server")
    with pytest.raises(FileNotFoundError, match="'/nonexistent/redis-server' is not an exec"):
        find_redis_server()


def test_without_redis_on_the_path_the_wheel_binary_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a fresh machine: nothing from apt
    monkeypatch.delenv(BINARY_VARIABLE, raising=False)
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        if request.config.getoption("--require-redis"):
            pytest.fail(f"--require-redis was given but {exc}")
        pytest.skip(str(exc))
    assert server.binary.origin != "PATH"
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(7) == b"+PONG\r\n"
    finally:
        server.close()


def test_the_header_says_which_server_the_redis_tests_use(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["redis: * (from *): * server v=*"])


def test_the_header_says_why_redis_tests_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BINARY_VARIABLE, "/nonexistent/redis-server")
    pytester.makepyfile(test_needs_redis="def test_needs_redis(redis_url):\n    pass\n")
    result = pytester.runpytest_inprocess("-rs")
    result.stdout.fnmatch_lines(["redis: none, Redis tests skip (*is not an executable file*"])
    result.assert_outcomes(skipped=1)
    assert pytester.runpytest_inprocess("--require-redis").ret != 0
