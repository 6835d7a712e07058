"""The SQLite storage's housekeeping (the
:class:`~durable_execution.storage.abilities.Maintenance` ability): giving the space of deleted
rows back to the file system.

SQLite reuses the pages that deleted rows free, but never shrinks the file by itself. The
storage creates new files with ``auto_vacuum = INCREMENTAL`` (it can only be chosen before the
first table is created, see :mod:`.connection`), and :meth:`SQLiteMaintenance.maintain` moves
up to :data:`PAGES_PER_PASS` free pages to the end of the file and truncates them
(``PRAGMA incremental_vacuum``), in the writer's thread, between two writes. A file created by
an earlier release has ``auto_vacuum = NONE``: ``maintain`` does nothing there, and the way to
shrink it is a ``VACUUM`` with the executors stopped, after ``PRAGMA auto_vacuum =
INCREMENTAL`` to convert it (docs/performance.md, "Scale").

Updates rewrite rows in place and leave nothing behind: without deletions there is nothing to
do, and a table of ten million finished executions costs the hot statements nothing more than
an empty one (same page).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from durable_execution.checks import MAX_DURATION_MS, check_int

__all__ = ["INCREMENTAL", "PAGES_PER_PASS", "SQLiteMaintenance", "free_pages"]

T = TypeVar("T")

INCREMENTAL = 2
"""``PRAGMA auto_vacuum``'s value for ``INCREMENTAL``."""
PAGES_PER_PASS = 4_096
"""Free pages given back per pass at most (16 MiB with 4 KiB pages): a pass holds the write
lock a few milliseconds."""


def free_pages(conn: sqlite3.Connection) -> int:
    """Pages of the file that hold nothing."""
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def _vacuum(conn: sqlite3.Connection) -> bool:
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != INCREMENTAL:
        return False
    if free_pages(conn) == 0:
        return False
    # executescript steps the pragma to its end (one step frees one page); its own
    # transaction, the writer having none open between two writes.
    conn.executescript(f"PRAGMA incremental_vacuum({PAGES_PER_PASS})")
    return True


class SQLiteMaintenance:
    """The :class:`~durable_execution.storage.abilities.Maintenance` ability."""

    _last_maintenance: float | None = None

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        raise NotImplementedError  # pragma: no cover - SQLiteStorage's

    async def maintain(self, *, min_interval_ms: int) -> bool:
        """Give up to :data:`PAGES_PER_PASS` free pages back to the file system, unless this
        storage object did less than ``min_interval_ms`` ago, or the file has none (or was
        created without incremental auto-vacuum)."""
        check_int("min_interval_ms", min_interval_ms, minimum=0, maximum=MAX_DURATION_MS)
        now = time.monotonic()
        last = self._last_maintenance
        if last is not None and (now - last) * 1000 < min_interval_ms:
            return False
        self._last_maintenance = now
        return await self._call(_vacuum)
