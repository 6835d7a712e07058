"""SQLite's watch of other processes' commits (``storage/sqlite/watch.py``): an executor hears
of an enqueue, a cancel or a wake-up made through another connection to the file within
milliseconds, not at its next poll; its own commits alone wake it only now and then."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from durable_execution import DurableExecutor, DurableTaskHandle, TaskContext
from durable_execution.storage.records import WorkKind
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.watch import BUSY_POLLS, CommitWatch

from .helpers import wait_until

NEVER_POLLS = 600_000  # ms: any run within the test's deadline came from a wake-up


async def noop(ctx: TaskContext, input: int) -> int:
    return input


async def test_an_enqueue_from_another_connection_wakes_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    worker = DurableExecutor(SQLiteStorage(path), background_process_interval_ms=NEVER_POLLS)
    worker_task = worker.task(id="noop", timeout_ms=10_000, run=noop)
    web = DurableExecutor(SQLiteStorage(path))  # another process would do the same
    task = web.task(id="noop", timeout_ms=10_000, run=noop)
    async with worker:
        await web.storage.initialize()
        for n in range(3):
            handle = await web.enqueue_task(task, n)
            execution = await worker.get_task_handle(worker_task, handle.execution_id)
            finished = await execution.wait_and_get_execution(timeout=10)
            assert finished.output == n
    await web.storage.close()


async def test_a_cancel_from_another_connection_reaches_the_running_task(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    started = asyncio.Event()

    async def slow(ctx: TaskContext, input: None) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = DurableExecutor(SQLiteStorage(path), background_process_interval_ms=NEVER_POLLS)
    task = worker.task(id="slow", timeout_ms=120_000, run=slow)
    other = DurableExecutor(SQLiteStorage(path))
    async with worker:
        handle = await worker.enqueue_task(task)
        await asyncio.wait_for(started.wait(), 10)
        await other.storage.initialize()
        await DurableTaskHandle(other, "slow", handle.execution_id).cancel()
        finished = await handle.wait_and_get_execution(timeout=10)
        assert finished.status.value == "cancelled"
        assert handle.execution_id not in worker._engine.running
    await other.storage.close()


class Heard:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, kinds: Iterable[WorkKind]) -> None:
        assert set(kinds) == set(WorkKind)
        self.count += 1


def _commit(path: Path, n: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", (n,))
    conn.close()


async def test_foreign_commits_wake_and_own_ones_only_every_few_polls(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    _commit(path, 0)
    heard = Heard()
    watch = CommitWatch(str(path), heard)
    watch.start()
    try:
        await wait_until(lambda: watch.watching, message="the watch's first look")
        _commit(path, 1)  # another connection: heard
        await wait_until(lambda: heard.count == 1, message="a foreign commit heard")
        # Commits counted as this object's own: heard BUSY_POLLS polls after the first one,
        # since another process may have committed in the same interval, and, while they go
        # on, once every BUSY_POLLS polls.
        seen, polls = heard.count, watch.polls
        for n in range(3 * BUSY_POLLS):
            watch.committed()
            _commit(path, 10 + n)
            changes = watch.changes_seen
            await wait_until(lambda c=changes: watch.changes_seen > c, message="the change seen")
        assert 1 <= heard.count - seen <= (watch.polls - polls) // BUSY_POLLS + 1
        # One more, then quiet: heard within BUSY_POLLS polls.
        seen = heard.count
        watch.committed()
        _commit(path, 99)
        await wait_until(lambda: heard.count > seen, message="an own commit heard late")
    finally:
        await watch.stop()
    assert not watch.running


async def test_the_watch_stops_with_the_last_listener_and_at_close(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "x.db")
    await storage.initialize()
    remove_a = storage.add_wakeup_listener(lambda kind: None)
    remove_b = storage.add_wakeup_listener(lambda kind: None)
    assert storage._watch.running
    remove_a()
    remove_a()  # twice: counted once
    assert storage._watch.running
    remove_b()
    assert not storage._watch.running
    storage.add_wakeup_listener(lambda kind: None)
    assert storage._watch.running
    await storage.close()
    assert not storage._watch.running
