"""``package.module:attribute`` to the app it names, for the command line and the pytest plugin."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


class AppLoadError(ValueError):
    """The target does not name an importable attribute; the message says which part failed."""


def load_app(target: str) -> Any:
    """Import ``package.module:attribute``, with the current directory importable, as servers do."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise AppLoadError(f"app {target!r} must look like 'package.module:app'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppLoadError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
