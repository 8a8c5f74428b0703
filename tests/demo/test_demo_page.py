"""The demo page in a real headless Chromium, against ``panther-ws demo`` in a subprocess.

The page's JavaScript opens both websockets; a message typed in the page comes back from the
echo endpoint, and a chat message sent from one tab arrives in a second tab through the
room's group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.processes import free_port, wait_for_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_chromium() -> str:
    if CHROMIUM is None:
        message = "the demo page test needs Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser there is a broken CI
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def demo_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "panther_ws", "demo", "--port", str(port)])
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_page_echoes_and_a_second_tab_gets_the_room_message(demo_server: str) -> None:
    executable = _need_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            first = browser.new_page()
            first.goto(demo_server + "?name=ann")
            expect(first.locator("#echo-status")).to_have_text("connected")
            expect(first.locator("#chat-status")).to_have_text("connected")

            first.fill("#echo-input", "hello from the page")
            first.click("#echo-send")
            expect(first.locator("#echo-log")).to_contain_text("echo: hello from the page")

            second = browser.new_page()
            second.goto(demo_server + "?name=bob")
            expect(second.locator("#chat-status")).to_have_text("connected")
            expect(first.locator("#chat-log")).to_contain_text("bob joined")
            expect(first.locator("#chat-here")).to_have_text("ann, bob")

            first.fill("#chat-input", "hi bob")
            first.click("#chat-send")
            expect(second.locator("#chat-log")).to_contain_text("ann: hi bob")
            expect(first.locator("#chat-log")).to_contain_text("ann: hi bob")

            second.close()
            expect(first.locator("#chat-log")).to_contain_text("bob left")
        finally:
            browser.close()
