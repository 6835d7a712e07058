"""The SQLite connection's own thread (storage/sqlite/connection.py): calls run in order in
it, their results and errors come back to the caller's loop, and the thread ends with
close() or with its storage."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from pathlib import Path

import pytest

from durable_execution import DurableStorageError
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.connection import ConnectionThread

from .helpers import wait_until


def sqlite_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "durable-sqlite"}


async def test_calls_run_in_order_in_one_thread_and_errors_come_back(tmp_path: Path) -> None:
    db = ConnectionThread(str(tmp_path / "a.db"), 1_000, "NORMAL")
    threads: list[str] = []

    def step(conn: sqlite3.Connection, i: int) -> int:
        threads.append(threading.current_thread().name)
        return i

    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT * FROM no_such_table")

    results = await asyncio.gather(*(db.call(lambda c, i=i: step(c, i)) for i in range(20)))
    assert results == list(range(20))
    assert set(threads) == {"durable-sqlite"}
    with pytest.raises(DurableStorageError, match="no such table"):
        await db.call(fail)
    assert await db.call(lambda c: step(c, 7)) == 7  # the thread carries on
    await db.close()


async def test_a_call_cancelled_before_it_starts_is_skipped(tmp_path: Path) -> None:
    db = ConnectionThread(str(tmp_path / "a.db"), 1_000, "NORMAL")
    await db.call(lambda conn: None)
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)

    held = db.call(hold)
    skipped = db.call(lambda conn: ran.append("skipped"))
    await asyncio.to_thread(started.wait, 10)
    skipped.cancel()
    release.set()
    await held
    assert await db.call(lambda conn: "after") == "after"
    assert ran == []
    await db.close()


async def test_close_ends_the_thread_and_a_later_call_opens_it_again(tmp_path: Path) -> None:
    before = sqlite_threads()
    storage = SQLiteStorage(tmp_path / "a.db")
    await storage.initialize()
    (first,) = sqlite_threads() - before
    await storage.close()
    await wait_until(lambda: not first.is_alive(), message="the thread to end")
    assert await storage.get_executions(["te_none"]) == []
    (second,) = sqlite_threads() - before
    await storage.close()
    await wait_until(lambda: not second.is_alive(), message="the thread to end again")


async def test_a_storage_dropped_without_close_lets_its_thread_end(tmp_path: Path) -> None:
    before = sqlite_threads()
    storage = SQLiteStorage(tmp_path / "a.db")
    await storage.initialize()
    (thread,) = sqlite_threads() - before
    del storage
    gc.collect()
    await wait_until(lambda: not thread.is_alive(), message="the thread to end")


def test_a_call_left_running_by_a_closed_loop_does_not_stop_the_thread(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "a.db")
    release = threading.Event()

    async def leave_a_call_running() -> None:
        await storage.initialize()
        storage._db.call(lambda conn: release.wait(10))  # not awaited: the loop ends first

    asyncio.run(leave_a_call_running())
    release.set()  # its result now goes to a closed loop

    async def use_again() -> list[object]:
        try:
            return list(await asyncio.wait_for(storage.get_executions(["te_none"]), 10))
        finally:
            await asyncio.wait_for(storage.close(), 10)

    assert asyncio.run(use_again()) == []
