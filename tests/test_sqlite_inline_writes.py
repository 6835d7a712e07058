"""SQLite's small writes on the caller's thread (``storage/sqlite/inline_writes.py``): they
commit before they return, keep the order of writes, never wait for a lock on the event loop,
never let the write-ahead log grow without a checkpoint, and let the event loop turn."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from durable_execution.storage.records import NewExecution
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.connection import ConnectionThread
from durable_execution.storage.sqlite.inline_writes import CHECKPOINT_EVERY, Writes
from durable_execution.storage.sqlite.turns import HOLD_S, LoopTurns

_TABLE = "CREATE TABLE IF NOT EXISTS t (n INTEGER, thread TEXT)"


def new(execution_id: str) -> NewExecution:
    return NewExecution(execution_id=execution_id, task_id="a", input="null", start_at_ms=0)


def _insert(n: int) -> Callable[[sqlite3.Connection], str]:
    def body(conn: sqlite3.Connection) -> str:
        conn.execute(_TABLE)
        conn.execute("INSERT INTO t VALUES (?, ?)", (n, threading.current_thread().name))
        return threading.current_thread().name

    return body


async def _writes(path: Path) -> tuple[ConnectionThread, Writes]:
    writer = ConnectionThread(os.fspath(path), 2_000, "NORMAL")
    writes = Writes(os.fspath(path), "NORMAL", writer, LoopTurns())
    await writes.write(_insert(0), small=False)  # opens the file: WAL, schema
    return writer, writes


async def _close(writer: ConnectionThread, writes: Writes) -> None:
    writes.close()
    await writer.close()


def _rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return [tuple(r) for r in conn.execute("SELECT n, thread FROM t ORDER BY rowid")]


async def test_a_small_write_commits_on_the_callers_thread_a_large_one_in_the_writers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    writer, writes = await _writes(path)
    here = threading.current_thread().name
    assert await writes.write(_insert(1), small=True) == here
    assert await writes.write(_insert(2), small=False) == "durable-sqlite"
    # committed before it returned: another connection sees both
    assert [n for n, _ in _rows(path)] == [0, 1, 2]
    await _close(writer, writes)


async def test_a_small_write_made_while_others_are_in_flight_commits_after_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "order.db"
    writer, writes = await _writes(path)
    gate = threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        gate.wait(10)
        _insert(1)(conn)

    in_flight = asyncio.ensure_future(writes.write(slow, small=False))
    small = asyncio.ensure_future(writes.write(_insert(2), small=True))
    await asyncio.sleep(0.01)
    assert not small.done()  # not committed ahead of the write in flight
    gate.set()
    await in_flight
    # ...but after it, on the caller's thread: one write in the thread does not send the
    # next ones there
    assert await small == threading.current_thread().name
    assert [n for n, _ in _rows(path)] == [0, 1, 2]
    await _close(writer, writes)


async def test_a_small_write_meeting_another_connections_lock_waits_off_the_event_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    writer, writes = await _writes(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write, say
    write = asyncio.ensure_future(writes.write(_insert(1), small=True))
    ticks = 0
    while ticks < 20:  # the event loop keeps turning while the write waits for the lock
        await asyncio.sleep(0.005)
        ticks += 1
    assert not write.done()
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(write, 10) == "durable-sqlite"
    assert [n for n, _ in _rows(path)] == [0, 1]
    await _close(writer, writes)


async def test_a_fresh_inline_connection_meeting_a_lock_gives_way(tmp_path: Path) -> None:
    """The lock is met by a connection opened for this write: the write goes to the writer's
    thread all the same, is made once, and the next one is inline again."""
    path = tmp_path / "fresh.db"
    writer, writes = await _writes(path)
    writes.close()  # the next inline write opens a fresh connection
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    write = asyncio.ensure_future(writes.write(_insert(1), small=True))
    for _ in range(10):
        await asyncio.sleep(0.005)
    assert not write.done()
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(write, 10) == "durable-sqlite"
    assert [n for n, _ in _rows(path)] == [0, 1]
    assert await writes.write(_insert(2), small=True) == threading.current_thread().name
    await _close(writer, writes)


async def test_small_writes_alone_keep_the_write_ahead_log_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer, writes = await _writes(path)
    payload = "x" * 3_000  # about a page a row

    def big_row(conn: sqlite3.Connection) -> str:
        conn.execute("CREATE TABLE IF NOT EXISTS p (v TEXT)")
        conn.execute("INSERT INTO p VALUES (?)", (payload,))
        return threading.current_thread().name

    threads = [await writes.write(big_row, small=True) for _ in range(30 * CHECKPOINT_EVERY)]
    assert threads.count("durable-sqlite") == 30  # one in CHECKPOINT_EVERY
    wal_size = os.path.getsize(f"{path}-wal")
    # 3,000 pages written; SQLite's automatic checkpoint (at 1,000 pages) kept the log short
    # (it restarts from its start once checkpointed, so the file stays near its threshold).
    assert wal_size < 1_500 * 4_096, wal_size  # without: 3,000 pages and more
    await _close(writer, writes)


async def test_a_caller_writing_in_a_loop_lets_the_event_loop_turn(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "fair.db")
    await storage.insert_executions([new("te_0")], now_ms=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started, before, n = time.monotonic(), ticks, 0
    while time.monotonic() - started < 20 * HOLD_S:
        n += 1
        assert await storage.insert_executions([new(f"te_{n}")], now_ms=1) == [f"te_{n}"]
    assert ticks - before >= 5
    ticking.cancel()
    await storage.close()


async def test_a_database_in_memory_is_written_in_the_writers_thread() -> None:
    writer = ConnectionThread(":memory:", 2_000, "NORMAL")
    writes = Writes(":memory:", "NORMAL", writer, LoopTurns())
    assert await writes.write(_insert(1), small=True) == "durable-sqlite"
    assert await writes.write(_insert(2), small=True) == "durable-sqlite"
    await _close(writer, writes)


async def test_drained_waits_for_the_calls_given_before_it_only(tmp_path: Path) -> None:
    writer = ConnectionThread(os.fspath(tmp_path / "drained.db"), 2_000, "NORMAL")
    await writer.call(lambda conn: None)
    assert writer.idle
    assert writer.drained().done()
    first_gate, second_gate = threading.Event(), threading.Event()
    first = writer.call(lambda conn: first_gate.wait(10))
    drained = writer.drained()
    second = writer.call(lambda conn: second_gate.wait(10))
    await asyncio.sleep(0.01)
    assert not drained.done()
    first_gate.set()
    await asyncio.wait_for(drained, 5)
    assert await first is True
    assert not second.done()
    assert not writer.idle
    second_gate.set()
    assert await second is True
    assert writer.idle
    await writer.close()
