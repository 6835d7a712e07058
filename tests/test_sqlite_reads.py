"""SQLite's reads on connections of their own (``storage/sqlite/readers.py``): they see every
write that returned, do not wait behind the writer, and close with the storage."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from durable_execution import DurableStorageError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ExecutionOutcome, NewExecution
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.connection import ConnectionThread
from durable_execution.storage.sqlite.readers import INLINE_RECORDS, Readers
from durable_execution.storage.sqlite.turns import HOLD_S, LoopTurns


def new(execution_id: str) -> NewExecution:
    return NewExecution(execution_id=execution_id, task_id="a", input="null", start_at_ms=0)


async def test_a_read_after_an_awaited_write_sees_it_while_other_writes_queue(
    tmp_path: Path,
) -> None:
    storage = SQLiteStorage(tmp_path / "reads.db")
    ids = [f"te_{i}" for i in range(60)]
    await storage.insert_executions([new(i) for i in ids], now_ms=1)
    claimed = await storage.claim_ready_executions(
        executor_id="ex", lease_ms_by_task={"a": 60_000}, now_ms=2, limit=len(ids)
    )
    tokens = {record.execution_id: record.lease_token for record in claimed}
    seen_before: list[bool] = []

    async def finish_then_read(execution_id: str) -> None:
        seen_before.append(execution_id in await storage.find_finished([execution_id]))
        outcome = ExecutionOutcome(
            execution_id=execution_id,
            lease_token=tokens[execution_id],
            expected_status=S.RUNNING,
            status=S.COMPLETED,
            output='"done"',
        )
        assert await storage.record_outcomes([outcome], now_ms=3) == [True]
        # the other writes are still queued in the writer's thread: this read is not
        assert await storage.find_finished([execution_id]) == {execution_id}
        [record] = await storage.get_executions([execution_id])
        assert (record.status, record.output) == (S.COMPLETED, '"done"')

    await asyncio.gather(*(finish_then_read(i) for i in ids))
    assert seen_before == [False] * len(ids)
    many = await storage.get_executions(ids)  # more than an inline read: the reader thread
    assert len(ids) > INLINE_RECORDS
    assert [r.execution_id for r in many] == ids
    assert {r.status for r in many} == {S.COMPLETED}
    await storage.close()


async def test_a_read_does_not_wait_for_a_write_waiting_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    storage = SQLiteStorage(path, busy_timeout_ms=5_000)
    ids = [f"te_{i}" for i in range(INLINE_RECORDS + 1)]
    await storage.insert_executions([new(i) for i in ids], now_ms=1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process writes, and holds the write lock
    blocker.execute(
        "INSERT INTO de_executions (execution_id, task_id, input, status, created_at, "
        "updated_at, start_at) VALUES ('uncommitted', 'a', 'null', 'ready', 1, 1, 1)"
    )
    insert = asyncio.create_task(storage.insert_executions([new("te_late")], now_ms=2))
    try:
        await asyncio.sleep(0.05)  # let the insert reach the writer's thread and wait there
        started = time.monotonic()
        wanted = ["uncommitted", ids[0]]
        assert [r.execution_id for r in await storage.get_executions(wanted)] == [ids[0]]
        assert len(await storage.get_executions(ids)) == len(ids)  # the reader thread
        assert await storage.find_finished(ids) == set()
        assert time.monotonic() - started < 2.5
        assert not insert.done()  # the reads did not wait for it
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert await asyncio.wait_for(insert, 10) == ["te_late"]
    late = await storage.get_executions(["te_late", "uncommitted"])
    assert [r.execution_id for r in late] == ["te_late", "uncommitted"]
    await storage.close()


def _open_files(path: Path) -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(os.fspath(path)):
            names.append(target)
    return names


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
async def test_close_releases_every_connection_and_reads_reopen(tmp_path: Path) -> None:
    path = tmp_path / "closing.db"
    storage = SQLiteStorage(path)
    ids = [f"te_{i}" for i in range(INLINE_RECORDS + 1)]
    await storage.insert_executions([new(i) for i in ids], now_ms=1)
    assert len(await storage.get_executions(ids[:1])) == 1  # inline
    assert len(await storage.get_executions(ids)) == len(ids)  # the reader thread
    assert _open_files(path)
    await storage.close()
    assert _open_files(path) == []
    deadline = time.monotonic() + 5
    while any(t.name.startswith("durable-sqlite") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a connection thread outlived close()"
        await asyncio.sleep(0.01)
    assert len(await storage.get_executions(ids)) == len(ids)  # opened again
    await storage.close()
    assert _open_files(path) == []


async def test_a_database_in_memory_is_read_through_the_writers_connection() -> None:
    storage = SQLiteStorage(":memory:")
    ids = [f"te_{i}" for i in range(INLINE_RECORDS + 1)]
    await storage.insert_executions([new(i) for i in ids], now_ms=1)
    assert [r.execution_id for r in await storage.get_executions(ids[:1])] == ids[:1]
    assert [r.execution_id for r in await storage.get_executions(ids)] == ids
    assert await storage.find_finished(ids) == set()
    await storage.close()


async def test_reads_from_two_threads_at_once_all_see_the_data(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "threads.db")
    ids = [f"te_{i}" for i in range(5)]
    await storage.insert_executions([new(i) for i in ids], now_ms=1)
    failures: list[BaseException] = []

    def reader() -> None:
        async def read_many() -> None:
            for n in range(300):
                wanted = ids[: 1 + n % len(ids)]
                assert [r.execution_id for r in await storage.get_executions(wanted)] == wanted

        try:
            asyncio.run(read_many())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    await storage.close()


async def test_a_caller_reading_in_a_loop_lets_the_event_loop_turn(tmp_path: Path) -> None:
    """An inline read does not suspend its caller; a caller that does nothing but read still
    lets the other tasks run every :data:`HOLD_S` or so."""
    storage = SQLiteStorage(tmp_path / "fair.db")
    await storage.insert_executions([new("te_1")], now_ms=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started, before = time.monotonic(), ticks
    while time.monotonic() - started < 20 * HOLD_S:
        assert len(await storage.get_executions(["te_1"])) == 1
    assert ticks - before >= 5
    ticking.cancel()
    await storage.close()


async def test_a_loop_that_closed_before_it_turned_costs_one_turn_at_most() -> None:
    turns = LoopTurns()
    turns._held_since.value = time.monotonic() - 1  # its marker went with its loop
    assert turns.held_too_long()  # the caller lets the loop turn once...
    assert not turns.held_too_long()  # ...and the count starts again
    await asyncio.sleep(0)
    assert not turns.held_too_long()


def _readers(path: Path) -> Readers:
    writer = ConnectionThread(os.fspath(path), 2_000, "NORMAL")
    return Readers(os.fspath(path), 2_000, writer, LoopTurns())


def _thread_name(conn: sqlite3.Connection) -> str:
    return threading.current_thread().name


async def test_small_reads_run_on_the_callers_thread_and_others_in_the_reader_thread(
    tmp_path: Path,
) -> None:
    readers = _readers(tmp_path / "route.db")
    assert await readers.read(_thread_name, inline=True) == threading.current_thread().name
    assert (await readers.read(_thread_name, inline=False)).startswith("durable-sqlite-reader")
    await readers.close()


async def test_an_inline_read_that_meets_a_lock_is_made_in_the_reader_thread(
    tmp_path: Path,
) -> None:
    readers = _readers(tmp_path / "busy.db")
    caller = threading.current_thread()

    def locked_here(conn: sqlite3.Connection) -> str:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM de_executions").fetchone()
        if threading.current_thread() is caller:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise busy  # the snapshot it began is let go
        conn.execute("COMMIT")
        return threading.current_thread().name

    assert (await readers.read(locked_here, inline=True)).startswith("durable-sqlite-reader")
    assert await readers.read(_thread_name, inline=True) == caller.name  # still usable
    await readers.close()


async def test_an_inline_read_that_fails_raises_a_storage_error(tmp_path: Path) -> None:
    readers = _readers(tmp_path / "fails.db")

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT no_such_column FROM de_executions")

    with pytest.raises(DurableStorageError, match="no_such_column") as raised:
        await readers.read(bad, inline=True)
    assert not raised.value.is_transient
    with pytest.raises(DurableStorageError, match="readonly"):  # reads only
        await readers.read(lambda conn: conn.execute("DELETE FROM de_executions"), inline=True)
    assert await readers.read(_thread_name, inline=True) == threading.current_thread().name
    await readers.close()
