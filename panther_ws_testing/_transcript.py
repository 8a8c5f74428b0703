"""A session's transcript: every ASGI message both ways, up to a bound.

A conversation of millions of messages would keep every payload alive; what a failing test
needs is how the conversation started and how it ended. So the transcript keeps the first
``HEAD`` entries and the last ``TAIL`` (between ``TAIL`` and twice that, as it trims in
batches) and counts the entries it dropped in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Entry = tuple[str, Mapping[str, Any]]

HEAD = 25
TAIL = 100


class Transcript(list[Entry]):
    """``(who, message)`` entries, ``who`` being ``"client"``, ``"app"``, or ``"server"`` for
    what the host sent after the app ended (its HTTP 500, or its 1000/1011 close); see the
    module.

    A list, so appending costs what a list's does (every message is appended); whoever
    appends calls :meth:`trim` when the list passes :data:`LIMIT`.
    """

    LIMIT = HEAD + 2 * TAIL

    # Entries no longer kept, between the head and the tail: a class default, so that making
    # a transcript (at every connect) runs no Python; the instance's own is set by a trim.
    dropped = 0

    def trim(self) -> None:
        """Drop the middle, keeping the first ``HEAD`` and the last ``TAIL`` entries."""
        excess = len(self) - HEAD - TAIL
        if excess > 0:
            del self[HEAD : HEAD + excess]
            self.dropped += excess
