"""Every Python block of README.md and docs/*.md runs, so a doc that rots fails the suite.

A block is run the way a reader would use it, in a fresh directory that holds the blocks of
its page that name a file in their first line (``# app.py``), so a later block can import an
earlier one:

- a block that defines tests (``def test_``/``async def test_``) runs under pytest;
- any other block runs as a script and must exit with status 0.

Each runs in its own process with a time limit, so a block that hangs fails, and never
shares state with the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIME_LIMIT = 120

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE_NAME = re.compile(r"#\s*([\w/]+\.py)\s*$")
_DEFINES_TESTS = re.compile(r"^(async )?def test_", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str

    @property
    def file_name(self) -> str | None:
        match = _FILE_NAME.match(self.code.split("\n", 1)[0])
        return match.group(1) if match else None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(page, text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in _FENCE.finditer(text)
    ]


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def _lay_out(block: Block, directory: Path) -> Path:
    """Write the page's named blocks, then this one; returns the file to run."""
    for other in blocks_of(block.page):
        if other.file_name is not None:
            target = directory / other.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(other.code, encoding="utf-8")
    name = block.file_name or f"test_block_{block.line}.py"
    target = directory / name
    target.write_text(block.code, encoding="utf-8")
    return target


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block_runs(block: Block, tmp_path: Path) -> None:
    target = _lay_out(block, tmp_path)
    if _DEFINES_TESTS.search(block.code):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target)]
    else:
        command = [sys.executable, str(target)]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=TIME_LIMIT
    )
    assert result.returncode == 0, (
        f"the block at {block.id} failed (exit {result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def test_every_page_is_searched() -> None:
    # The README and every guide: a page whose blocks were silently not run would rot.
    assert {page.name for page in PAGES} >= {"README.md", "handlers.md", "testing.md"}
    assert len(BLOCKS) >= 20
