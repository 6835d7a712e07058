"""Work done on the event loop's own thread (small reads and writes, see ``readers.py`` and
``inline_writes.py``) returns without suspending its caller: a caller that reads or writes in
a loop would hold the event loop for as long as its loop runs. :class:`LoopTurns` tells such
work when the event loop has not turned for :data:`HOLD_S`; it then lets it turn
(``asyncio.sleep(0)``) before it returns.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Final

__all__ = ["HOLD_S", "PRIVATE_PATHS", "LoopTurns"]

HOLD_S: Final = 0.002
"""How long inline reads and writes may run one after another before one lets the event loop
turn."""

PRIVATE_PATHS: Final = frozenset({"", ":memory:"})
"""Paths of databases that exist in one connection alone (in memory, or a private temporary
file): no other connection can read or write them."""


class LoopTurns:
    """Whether the event loop of this thread turned since inline work began holding it."""

    def __init__(self) -> None:
        self._held_since = threading.local()  # each thread runs its own event loop

    def held_too_long(self) -> bool:
        """True when no turn of the loop came for :data:`HOLD_S` of inline work: the caller
        then lets it turn. (Counting starts again, also after a loop that closed before it
        turned.)"""
        since: float | None = getattr(self._held_since, "value", None)
        now = time.monotonic()
        if since is None:
            self._held_since.value = now
            asyncio.get_running_loop().call_soon(self._turned)
            return False
        if now - since <= HOLD_S:
            return False
        self._held_since.value = None
        return True

    def _turned(self) -> None:
        self._held_since.value = None
