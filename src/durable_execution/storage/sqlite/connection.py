"""The SQLite connection of one storage object: opened on first use in its own thread, set up
(WAL, busy timeout, schema), and every call run there with SQLite's errors translated.

The event loop never blocks on the database: each call is handed to the connection's one
thread. A failure becomes a :class:`~durable_execution.errors.DurableStorageError`
(``is_transient`` for a locked file, an I/O error, a file that cannot be opened now), or a
:class:`~durable_execution.errors.StorageSchemaError` for a file that is not ours or corrupt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from durable_execution.errors import DurableStorageError, StorageSchemaError
from durable_execution.storage.sqlite.schema import ensure_schema

__all__ = [
    "ConnectionThread",
    "connect",
    "end_failed_transaction",
    "is_transient",
    "storage_error",
    "transaction",
]

T = TypeVar("T")
_MIN_SQLITE = (3, 35, 0)


# A call waiting for the thread: the caller's loop, its future, what to run in the thread.
_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class _Pending:
    """The calls a connection's thread was given and has not finished, and who waits for the
    thread to finish those given before a moment (:meth:`ConnectionThread.drained`)."""

    __slots__ = ("count", "finished", "lock", "waiters")

    def __init__(self) -> None:
        self.count = 0
        self.finished = 0  # calls finished since the start
        self.lock = threading.Lock()
        # (calls that must have finished, the waiter's loop, its future)
        self.waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def done(self) -> None:
        with self.lock:
            self.count -= 1
            self.finished += 1
            if not self.waiters:
                return
            ready = [w for w in self.waiters if w[0] <= self.finished]
            self.waiters = [w for w in self.waiters if w[0] > self.finished]
        for _, loop, future in ready:
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed
                loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _serve(calls: queue.SimpleQueue[_Call | None], pending: _Pending) -> None:
    """A connection's thread: run each call, in order, until told to stop."""
    while (call := calls.get()) is not None:
        _run(*call, pending)
        del call  # hold nothing of the last call (nor of its owner) while waiting


def _run(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    job: Callable[[], Any],
    pending: _Pending,
) -> None:
    if future.cancelled():  # a read of a flag: a race only decides whether it runs
        pending.done()
        return
    try:
        outcome: tuple[bool, Any] = (True, job())
    except BaseException as exc:
        outcome = (False, exc)
    pending.done()  # before the caller hears of it: its next call may find the thread idle
    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
        loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    """Give ``future`` the thread's outcome (in the caller's event loop)."""
    if future.done():  # cancelled while the thread ran it
        return
    succeeded, value = outcome
    if succeeded:
        future.set_result(value)
    else:
        future.set_exception(value)


def transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    """Run ``body`` in a write transaction (``BEGIN IMMEDIATE``: the file's write lock)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class ConnectionThread:
    """One connection to ``path``, used only by one thread of its own.

    ``synchronous`` is the writer's setting: its connection puts the file in WAL mode and
    creates or checks the schema on opening. With ``None``, the connection only reads (the
    reader thread of ``readers.py``, opened after the writer's).

    The thread takes calls from a queue and hands each result back to the caller's event
    loop directly (``call_soon_threadsafe``): not through ``run_in_executor``, whose
    ``concurrent.futures`` machinery adds locks and thread switches to every call, a large
    part of what a short write costs.
    """

    def __init__(self, path: str, busy_timeout_ms: int, synchronous: str | None) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._calls: queue.SimpleQueue[_Call | None] | None = None  # while the thread runs
        self._pending = _Pending()
        self._thread_lock = self._pending.lock
        self._conn: sqlite3.Connection | None = None
        self.journal_mode: str | None = None
        """The writer's journal mode (``wal`` but for a database in memory, or a file system
        without shared memory), once its connection is open; ``None`` before."""

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """``fn(connection)`` in the connection's thread (opening it first if needed); await
        the future it returns (a plain function, not a coroutine: one frame less per call).
        Cancelling the future before the thread takes the call skips it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._thread_lock:
            if self._calls is None:
                self._calls = queue.SimpleQueue()
                name = "durable-sqlite" if self._synchronous else "durable-sqlite-reader"
                threading.Thread(
                    target=_serve, args=(self._calls, self._pending), name=name, daemon=True
                ).start()
                # Dropped without close(): the thread ends (it holds no reference to self).
                weakref.finalize(self, self._calls.put, None)
            self._pending.count += 1
            self._calls.put((loop, future, functools.partial(self._in_thread, fn)))
        return future

    @property
    def idle(self) -> bool:
        """Whether every call given to the thread has finished (a call made now would be the
        only one in flight)."""
        return self._pending.count == 0

    def drained(self) -> asyncio.Future[None]:
        """A future done once every call given to the thread so far has finished (the calls
        given later may still run)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pending
        with pending.lock:
            if pending.count == 0:
                future.set_result(None)
            else:
                ticket = pending.finished + pending.count
                pending.waiters.append((ticket, asyncio.get_running_loop(), future))
        return future

    async def close(self) -> None:
        """Close the connection and let the thread go; a later call opens them again."""
        with self._thread_lock:
            calls, self._calls = self._calls, None
        if calls is None:
            return

        def close_connection() -> None:
            conn, self._conn = self._conn, None
            self.journal_mode = None
            if conn is not None:
                conn.close()

        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        with self._thread_lock:
            self._pending.count += 1
        calls.put((loop, closed, close_connection))
        calls.put(None)  # then the thread ends
        await closed

    def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._connection())
        except (DurableStorageError, ValueError):
            raise
        except (OverflowError, sqlite3.DatabaseError) as exc:
            raise storage_error(self.path, exc) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        directory = os.path.dirname(os.path.abspath(self.path))
        if self.path != ":memory:" and not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        conn = connect(self.path, self._busy_timeout_ms)
        try:
            if self._synchronous is None:  # a reader: the writer made the file and its schema
                conn.execute("PRAGMA query_only = ON")
            else:
                _check_features(conn)
                # Only a new file takes it (before its first table and its switch to WAL):
                # the space of deleted rows can then be given back (see .maintenance).
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                mode = _enter_wal(conn, self._busy_timeout_ms / 1000)
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                conn.execute("PRAGMA temp_store = MEMORY")
                transaction(conn, lambda: ensure_schema(conn, self.path))
                self.journal_mode = mode
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn


def end_failed_transaction(conn: sqlite3.Connection) -> bool:
    """Roll back what a read or write that failed midway left open; False when that failed
    too (the connection is closed then: its owner opens another)."""
    try:
        conn.rollback()
    except sqlite3.Error:
        conn.close()
        return False
    return True


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection to ``path`` in autocommit mode (transactions are explicit), usable from
    any thread (one at a time), that waits ``busy_timeout_ms`` for another's lock."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    except BaseException:
        conn.close()
        raise
    return conn


def storage_error(path: str, exc: OverflowError | sqlite3.DatabaseError) -> DurableStorageError:
    """The storage error that reports ``exc``, raised on the database at ``path``."""
    if isinstance(exc, OverflowError):  # an integer beyond SQLite's 64 bits, as a parameter
        return DurableStorageError(f"SQLite error on {path}: a value is out of range: {exc}")
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return StorageSchemaError(
            f"{path} is not a durable_execution SQLite database, or it is corrupt: {message}"
        )
    return DurableStorageError(f"SQLite error on {path}: {message}", is_transient=is_transient(exc))


# Result codes (primary, the low byte) of failures that may pass: the file is locked by
# another connection past the busy timeout, an I/O error, the file cannot be opened now.
_TRANSIENT_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)


def is_transient(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _TRANSIENT_CODES


def _check_features(conn: sqlite3.Connection) -> None:
    """Fail clearly on an SQLite library too old for our statements: they need ``RETURNING``
    (3.35) and the JSON functions (built in since 3.38, a compile option before)."""
    version = sqlite3.sqlite_version
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise DurableStorageError(
            f"SQLite {version} is too old: durable_execution needs SQLite "
            f"{'.'.join(map(str, _MIN_SQLITE))} or newer (Python's sqlite3 module uses the "
            "library it was built with)"
        )
    try:
        conn.execute("SELECT json_extract('[1]', '$[0]')").fetchone()
    except sqlite3.OperationalError as exc:
        raise DurableStorageError(
            f"SQLite {version} was built without the JSON functions, which durable_execution "
            f"needs: {exc}"
        ) from exc


def _enter_wal(conn: sqlite3.Connection, timeout_s: float) -> str:
    """Put the database in WAL mode (kept in the file: a no-op once done); the journal mode
    it is in then (a database in memory, or on a file system without shared memory, keeps
    another one).

    When two connections switch the same new database at the same moment, SQLite answers one
    of them "database is locked" at once, without waiting through its busy timeout (seen in
    about one try in four with two threads). Retry until ``timeout_s`` has passed.
    """
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay_s > deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)
