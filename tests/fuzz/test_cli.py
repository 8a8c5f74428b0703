"""``panther-ws fuzz``: a summary, the reproduction, and an exit status a CI step can use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from panther_ws_testing._fuzz_cli import main

ROOT = Path(__file__).resolve().parents[2]
CHAT = ["examples.chat:app", "--path", "/ws/chat/<room>/", "--query", "name=alice"]


def test_the_chat_example_fuzzes_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*CHAT, "--replies", "--max-examples", "30"]) == 0
    assert "no failure" in capsys.readouterr().out


def test_a_failing_app_prints_its_repro_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    # Any text that is not JSON crashes the orders handler.
    assert (
        main(
            [
                "tests.fuzz.apps:crashing_app",
                "--path",
                "/ws/orders/",
                "--max-examples",
                "30",
                "--shrink-seconds",
                "1",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "JSONDecodeError" in out
    assert "from tests.fuzz.apps import crashing_app as app" in out
    assert "async def test_conversation_found_by_fuzzing():" in out


def test_a_time_budget_ends_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*CHAT, "--seconds", "0.5", "--max-examples", "1000000"]) == 0
    conversations = int(capsys.readouterr().out.split(" conversations")[0])
    assert 0 < conversations < 1000000


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("examples.chat", "must look like 'package.module:app'"),
        ("examples.nowhere:app", "cannot import 'examples.nowhere'"),
        ("examples.chat:nothing", "module 'examples.chat' has no attribute 'nothing'"),
    ],
)
def test_an_app_that_cannot_be_loaded_is_named_with_the_reason(target: str, error: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main([target, "--path", "/ws/"])
    assert str(exited.value).startswith("error: ")
    assert error in str(exited.value)


def test_a_query_without_a_value_is_refused() -> None:
    with pytest.raises(SystemExit, match="--query takes NAME=VALUE, got 'name'"):
        main([*CHAT[:3], "--query", "name"])


@pytest.mark.parametrize(
    ("backend", "mode"), [("asyncio", []), ("trio", ["--wire"])], ids=["asyncio", "trio-wire"]
)
def test_panther_ws_fuzz_runs_as_a_process(backend: str, mode: list[str]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "panther_ws",
            "fuzz",
            *CHAT,
            "--max-examples",
            "20",
            "--backend",
            backend,
            *mode,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "conversations in" in result.stdout
