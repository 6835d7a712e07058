"""Small write transactions committed on the caller's thread (the event loop's).

A write goes to the writer's thread (``connection.py``) and its result comes back to the event
loop: two thread switches, each waiting for the interpreter's lock, which cost more than a
small transaction itself (a one-row insert commits in a few tens of microseconds in WAL mode
with ``synchronous=NORMAL``, where a commit does not sync the disk). An awaited
``enqueue_task`` is such a write, and so is a lone outcome.

So a *small* write (the caller says which are) runs on the caller's thread, on a connection
kept for that, once nothing else is in flight in the writer's thread: it first waits for the
writes given to that thread before it, so writes still commit in the order they were made, and
the two connections never wait for each other's lock. (Had it queued behind them instead, the
next small write would find the thread busy again, and the next: one write in the thread
would send every later one there.) It commits before it returns, as in the thread: durable
when its caller is told.

- It never waits for a lock (busy timeout 0): when another connection holds one it needs
  (the write lock, held by another process or by the writer's thread, which a write from
  another thread may have just woken; or the log's index while another connection
  checkpoints or recovers it), the step fails at once, the transaction is rolled back, and
  the write goes to the writer's thread, which waits for the lock as every write does.
- It never checkpoints the write-ahead log on the event loop (a checkpoint writes and syncs
  pages for milliseconds): its connection has no automatic checkpoints, and one small write in
  :data:`CHECKPOINT_EVERY` goes to the writer's thread instead, whose commits checkpoint when
  the log has grown past SQLite's threshold (its default, 1,000 pages).
- A caller that writes in a loop lets the event loop turn every
  :data:`~durable_execution.storage.sqlite.turns.HOLD_S` (``turns.py``).
- A database in memory or a private temporary file exists in the writer's connection alone,
  and a file that is not in WAL mode would make readers wait: their writes all go to the
  writer's thread.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from typing import Final, TypeVar

from durable_execution.storage.sqlite.connection import ConnectionThread, transaction
from durable_execution.storage.sqlite.inline import InlineConnection, Locked
from durable_execution.storage.sqlite.turns import PRIVATE_PATHS, LoopTurns

__all__ = ["CHECKPOINT_EVERY", "Writes"]

T = TypeVar("T")

CHECKPOINT_EVERY: Final = 100
"""One small write in this many goes to the writer's thread, whose commit checkpoints the
write-ahead log when it has grown large enough."""


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (busy or locked, any extended code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY_CODES


class Writes:
    """The write transactions of a storage: small ones on the caller's thread when they can
    be (see the module docstring), the others in the writer's thread."""

    def __init__(
        self, path: str, synchronous: str, writer: ConnectionThread, turns: LoopTurns
    ) -> None:
        self._path = path
        self._writer = writer
        # Another connection held a lock that a step needed (the write lock, or the log's
        # index while it checkpoints or recovers): nothing was committed, since a commit
        # that fails leaves its transaction open (rolled back there). The writer's thread
        # makes the write instead, waiting for the lock as every write does.
        self._inline = InlineConnection(
            path, setup=functools.partial(_set_up, synchronous), is_locked=_is_busy
        )
        self._turns = turns
        self._inline_writes = 0

    async def write(self, body: Callable[[sqlite3.Connection], T], *, small: bool) -> T:
        """``body(connection)`` in a write transaction, committed when this returns: on the
        caller's thread when ``small`` (once the writes given to the writer's thread before
        it are done), else in that thread. ``body`` runs again in the thread when its try on
        the caller's thread met a lock (that try is rolled back); it must start from scratch
        each time."""
        if small and self._may_inline():
            if not self._writer.idle:
                # Wait for the writes given to the thread before this one, then write here:
                # queued behind them, this write would wait as long, and the next small
                # write would find the thread busy again, and so on.
                await self._writer.drained()
            if self._writer.idle:
                result = self._inline.try_call(functools.partial(_committed, body))
                if not isinstance(result, Locked):
                    if self._turns.held_too_long():
                        await asyncio.sleep(0)
                    return result
        return await self._writer.call(lambda conn: transaction(conn, lambda: body(conn)))

    def _may_inline(self) -> bool:
        if self._writer.journal_mode != "wal" or self._path in PRIVATE_PATHS:
            return False
        self._inline_writes += 1
        return self._inline_writes % CHECKPOINT_EVERY != 0

    def close(self) -> None:
        """Close the inline connection; a later write opens it again."""
        self._inline.close()


def _set_up(synchronous: str, conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA temp_store = MEMORY")


def _committed(body: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """``body`` in a write transaction; one that fails midway, its commit included, is left
    open for the inline connection to roll back."""
    conn.execute("BEGIN IMMEDIATE")
    result = body(conn)
    conn.execute("COMMIT")
    return result
