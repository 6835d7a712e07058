"""A connection used on the caller's thread (the event loop's) that never waits for a lock:
the small reads (``readers.py``) and the small writes (``inline_writes.py``) each keep one.

A call on it either finishes at once or meets a lock and returns :data:`LOCKED` having done
nothing (what it began is rolled back): its owner then makes it in its thread, which waits
for the lock. The call is synchronous, no coroutine of its own on the hot path; its owner
lets the event loop turn after it when inline work has held the loop too long (``turns.py``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from durable_execution.errors import DurableStorageError
from durable_execution.storage.sqlite.connection import (
    connect,
    end_failed_transaction,
    storage_error,
)

__all__ = ["LOCKED", "InlineConnection", "Locked"]

T = TypeVar("T")


class Locked:
    """What an inline call returns when it met a lock: nothing was done."""


LOCKED = Locked()


class InlineConnection:
    """One connection to ``path`` with busy timeout 0, opened on first use and set up by
    ``setup``, serving one thread at a time. ``is_locked`` tells which failures of a step
    mean a lock held elsewhere (:data:`LOCKED`); any other is raised as a storage error."""

    def __init__(
        self,
        path: str,
        *,
        setup: Callable[[sqlite3.Connection], None],
        is_locked: Callable[[sqlite3.OperationalError], bool],
    ) -> None:
        self._path = path
        self._setup = setup
        self._is_locked = is_locked
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one thread at a time

    def try_call(self, fn: Callable[[sqlite3.Connection], T]) -> T | Locked:
        """``fn(connection)`` on this thread; :data:`LOCKED` when another thread is using the
        connection or a step met a lock."""
        if not self._lock.acquire(blocking=False):
            return LOCKED
        try:
            return self._call(fn)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the connection; a later call opens it again."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T | Locked:
        conn = self._conn
        try:
            if conn is None:
                conn = connect(self._path, busy_timeout_ms=0)
                try:
                    self._setup(conn)
                except BaseException:
                    conn.close()
                    conn = None  # closed: nothing to roll back below
                    raise
                self._conn = conn
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if self._is_locked(exc):
                return LOCKED
            raise storage_error(self._path, exc) from exc
        except (DurableStorageError, ValueError):
            raise
        except (OverflowError, sqlite3.DatabaseError) as exc:
            raise storage_error(self._path, exc) from exc
        finally:
            # Roll back what failed midway, or let the connection go with it.
            if conn is not None and conn.in_transaction and not end_failed_transaction(conn):
                self._conn = None
