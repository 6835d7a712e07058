"""Wake-ups from other processes on SQLite: a watch of the file's commits.

SQLite has no NOTIFY. An executor hears at once of what its own storage object commits (the
in-process listeners); before this watch, a commit by another process (an enqueue from a web
application, a worker's outcome, ``durable-execution cancel`` or ``wakeup``) waited for the next
poll of each background loop, ``background_process_interval_ms`` (250 ms by default).

While a storage object has listeners, :class:`CommitWatch` asks SQLite every
:data:`INTERVAL_S` whether the file changed (``PRAGMA data_version``: a read of the WAL index
in shared memory, a few microseconds, no lock taken) and, when it did, wakes every kind of
work. ``data_version`` also changes for this object's own commits, made on its other
connections, and cannot tell them apart: a change seen while this object committed too is taken
for its own, which woke what it had to already; it still wakes the listeners
:data:`BUSY_POLLS` polls later, since another process may have committed in the same interval:
a busy process hears of the others' work within ``BUSY_POLLS * INTERVAL_S`` (50 ms), and its
own commits alone wake it at most once in that time. A wake-up that finds nothing costs one
query per loop; one missed is seen at the loop's next poll anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable

from durable_execution.storage.records import WorkKind
from durable_execution.storage.sqlite.connection import connect

__all__ = ["BUSY_POLLS", "INTERVAL_S", "CommitWatch"]

INTERVAL_S = 0.01
"""How often the file is checked for other processes' commits."""
BUSY_POLLS = 5
"""Polls after a change seen while this object committed too, before it wakes anyway."""

_ALL_KINDS = tuple(WorkKind)
_log = logging.getLogger("durable_execution.storage")


class CommitWatch:
    """Calls ``notify`` with every kind of work when another connection commits to ``path``.

    :meth:`committed` counts this object's own commits; :meth:`start` and :meth:`stop` are
    called from the event loop (idempotent)."""

    def __init__(self, path: str, notify: Callable[[Iterable[WorkKind]], None]) -> None:
        self._path = path
        self._notify = notify
        self._own = 0
        self._task: asyncio.Task[None] | None = None
        self.polls = 0  # looks at the file
        self.changes_seen = 0  # changes of the file seen, own ones included
        self.watching = False  # it has looked at the file once: what changes from now is seen

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def committed(self) -> None:
        """This object committed a write (any thread)."""
        self._own += 1

    def start(self) -> None:
        """Watch from the running event loop (nothing without one: the loops' polls remain).
        The file's state is read at once: any commit after this call is heard."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        version = self._look(None)
        self._task = loop.create_task(self._watch(version), name="durable-execution-sqlite-watch")

    def stop_soon(self) -> None:
        """Stop watching, without waiting."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(RuntimeError):  # its event loop is closed
                task.cancel()

    async def stop(self) -> None:
        """Stop watching; once stopped, the watch's connection is closed."""
        task = self._task
        self.stop_soon()
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(task, return_exceptions=True)

    def _look(self, conn: sqlite3.Connection | None) -> tuple[sqlite3.Connection, int] | None:
        """The file's ``data_version`` through ``conn`` (a new connection when ``None``);
        ``None`` when it cannot be read now (the connection is closed then)."""
        try:
            if conn is None:
                conn = connect(self._path, busy_timeout_ms=0)
            return conn, int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:  # the file is gone or unreadable: try again later
            _log.debug("watching %s for other processes' commits: %s", self._path, exc)
            if conn is not None:
                conn.close()
            return None

    async def _watch(self, looked: tuple[sqlite3.Connection, int] | None) -> None:
        conn, version = looked if looked is not None else (None, None)
        own = self._own
        # Polls left before a change taken for our own wakes the listeners anyway (None: none
        # pending): it may have hidden another process's.
        deferred: int | None = None
        try:
            while True:
                self.watching = version is not None
                await asyncio.sleep(INTERVAL_S)
                looked = self._look(conn)
                if looked is None:
                    conn, version = None, None  # versions of a new connection start anew
                    continue
                conn, seen = looked
                changed = version is not None and seen != version
                version = seen
                self.polls += 1
                if changed:
                    self.changes_seen += 1
                    ours, own = self._own != own, self._own
                    if not ours:
                        deferred = 1  # now
                    elif deferred is None:
                        deferred = BUSY_POLLS
                if deferred is None:
                    continue
                deferred -= 1
                if deferred > 0:
                    continue
                deferred = None
                self._notify(_ALL_KINDS)
        finally:
            self.watching = False
            if conn is not None:
                conn.close()
