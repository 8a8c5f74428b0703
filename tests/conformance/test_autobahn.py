"""The Autobahn TestSuite against our server (fuzzingclient) and our client (fuzzingserver).

Sections 1-10 (301 cases, about 25 s each way) run whenever the suite can be installed
(``../shared/conformance/install.sh``: Python 2.7 from pyenv plus PyPI). Where it cannot,
the tests skip with the reason, except under CI (``CI=true``), where that is a failure.
``AUTOBAHN_ALL=1`` (``tox -e autobahn``) runs all 517 cases, permessage-deflate included.
Every case must pass with behaviour OK or INFORMATIONAL (no NON-STRICT) and a clean close.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT.parent / "shared" / "conformance"
RUN_ALL = os.environ.get("AUTOBAHN_ALL") == "1"
EXCLUDE = "" if RUN_ALL else "12.*,13.*"
PASSING = {"OK", "INFORMATIONAL"}

pytestmark = pytest.mark.timeout(3600 if RUN_ALL else 600)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the Autobahn TestSuite is required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def autobahn() -> Path:
    if not (CONFORMANCE / "install.sh").exists():
        _unavailable(f"{CONFORMANCE} is missing")
    venv = Path(os.environ.get("AUTOBAHN_VENV", "/tmp/autobahn-venv"))
    if not (venv / "bin" / "wstest").exists():
        result = subprocess.run(
            ["bash", str(CONFORMANCE / "install.sh")], capture_output=True, timeout=900
        )
        if result.returncode != 0:
            _unavailable(f"install.sh failed: {result.stderr.decode()[-500:]}")
    return CONFORMANCE


def _failures(report_dir: Path) -> list[str]:
    index = json.loads((report_dir / "index.json").read_text())
    failures = []
    for agent_cases in index.values():
        for case, result in sorted(agent_cases.items()):
            if result["behavior"] not in PASSING or result["behaviorClose"] not in PASSING:
                failures.append(f"{case}: {result['behavior']} / close {result['behaviorClose']}")
    expected = (report_dir / "expected-cases.txt").read_text().split()
    reported = {case for agent_cases in index.values() for case in agent_cases}
    failures += [f"{case}: MISSING" for case in expected if case not in reported]
    return failures


def test_our_server(autobahn: Path, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panther_ws",
            "serve",
            "tests.network.apps:echo_app",
            "--port",
            str(port),
            "--max-message-size",
            str(32 * 1024 * 1024),
            "--log-level",
            "error",
        ],
        cwd=ROOT,
    )
    try:
        result = subprocess.run(
            ["bash", str(autobahn / "run-fuzzingclient.sh"), "127.0.0.1", str(port), str(tmp_path)],
            env={**os.environ, "EXCLUDE": EXCLUDE},
            capture_output=True,
            timeout=3000,
        )
        print(result.stdout.decode())
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert _failures(tmp_path) == []
    assert (tmp_path / "index.json").exists()


def test_our_client(autobahn: Path, tmp_path: Path) -> None:
    port = free_port()
    fuzzingserver = subprocess.Popen(
        ["bash", str(autobahn / "run-fuzzingserver.sh"), str(port), str(tmp_path)],
        env={**os.environ, "EXCLUDE": EXCLUDE},
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert fuzzingserver.poll() is None, "the fuzzingserver exited before it was ready"
            assert time.monotonic() < deadline, "the fuzzingserver did not get ready"
            time.sleep(0.2)
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "conformance" / "autobahn_client.py"),
                f"ws://127.0.0.1:{port}",
                "panther_ws",
            ],
            cwd=ROOT,
            timeout=3000,
            check=True,
        )
        output, _ = fuzzingserver.communicate(timeout=300)
        print(output.decode())
    finally:
        if fuzzingserver.poll() is None:
            fuzzingserver.terminate()
            fuzzingserver.wait(timeout=15)
    assert _failures(tmp_path) == []
