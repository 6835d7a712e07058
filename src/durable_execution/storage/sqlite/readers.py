"""Reads of one SQLite storage, on connections of their own.

Writes go one at a time through the writer's connection and thread (``connection.py``); a
read does not queue behind them. In WAL mode readers and the writer do not block one another,
and a read sees every transaction committed before it began: a write commits before its
caller is told it is done, so a read issued after an awaited write sees it.

- A small read runs at once on the caller's thread (the event loop's), on a connection kept
  for that: SQLite reads a record in a fraction of what a hop to another thread and back costs
  (docs/performance.md). It never waits for a lock (busy timeout 0); in the rare moments a
  reader meets one (another connection recovering the WAL after a crash, or holding the file
  exclusively), the read is made in the reader thread instead, which waits as writes do.
- An inline read returns without suspending its caller, so a caller that reads in a loop
  would hold the event loop for as long as the loop runs: once the event loop has not turned
  for :data:`~durable_execution.storage.sqlite.turns.HOLD_S`, a read lets it turn
  (``asyncio.sleep(0)``) before it returns.
- A larger read runs in the reader thread, on its own connection, so the event loop is not
  held for long (record decoding is Python, but SQLite's part of the work runs beside it).
- A database in memory (``:memory:``, or the empty path: a private temporary file) exists in
  the writer's connection alone, and a file that could not enter WAL mode makes readers and
  the writer wait for each other: their reads go through the writer's thread, as writes do.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Final, TypeVar

from durable_execution.storage.sqlite.connection import ConnectionThread, is_transient
from durable_execution.storage.sqlite.inline import InlineConnection, Locked
from durable_execution.storage.sqlite.turns import PRIVATE_PATHS, LoopTurns

__all__ = ["INLINE_IDS", "INLINE_RECORDS", "Readers"]

T = TypeVar("T")

INLINE_RECORDS: Final = 32
"""The most records a read decodes on the caller's thread; a larger read goes to the reader
thread. Both limits keep an inline read within a few ordinary steps of the event loop."""
INLINE_IDS: Final = 512
"""The most ids a read that decodes no record (``find_finished``) looks up on the caller's
thread."""


class Readers:
    """The read connections of a storage: one for small reads on the caller's thread, one in
    a reader thread for the others."""

    def __init__(
        self, path: str, busy_timeout_ms: int, writer: ConnectionThread, turns: LoopTurns
    ) -> None:
        self._path = path
        self._writer = writer
        self._thread = ConnectionThread(path, busy_timeout_ms, None)
        # A read that meets a lock there is made in the reader thread.
        self._inline = InlineConnection(path, setup=_read_only, is_locked=is_transient)
        self._separate: bool | None = None  # None until the writer opened the file
        self._turns = turns

    async def open(self) -> None:
        """Open the writer's connection (which creates or checks the file and its schema)
        unless it is open, and learn whether reads can have connections of their own."""
        if self._writer.journal_mode is None:
            await self._writer.call(_nothing)
        mode = self._writer.journal_mode
        self._separate = mode == "wal" and self._path not in PRIVATE_PATHS

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool) -> T:
        """``fn(connection)`` on a read connection: on the caller's thread when ``inline``
        (and no other thread is using that connection), else in the reader thread. ``fn``
        must only read, and end any transaction it begins."""
        if self._separate is None:
            await self.open()
        if not self._separate:
            return await self._writer.call(fn)
        if inline:
            result = self._inline.try_call(fn)
            if not isinstance(result, Locked):
                if self._turns.held_too_long():
                    await asyncio.sleep(0)
                return result
        return await self._thread.call(fn)

    async def close(self) -> None:
        """Close the read connections; a later read opens them again."""
        self._inline.close()
        self._separate = None
        await self._thread.close()


def _nothing(conn: sqlite3.Connection) -> None:
    pass


def _read_only(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = ON")
