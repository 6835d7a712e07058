"""Transient storage failures at enqueue are retried, a bounded number of times, and never
store an execution twice, even when the failed attempt had committed."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from durable_execution import (
    DuplicateExecutionError,
    DurableExecutor,
    DurableStorageError,
    TaskContext,
)
from durable_execution.executor import insert_retry
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import NewExecution
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.testing import DelegatingStorage

from .backends import BACKENDS
from .helpers import wait_until


@pytest.fixture(autouse=True)
def short_retry_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(insert_retry, "RETRY_DELAYS_S", (0.001, 0.002, 0.004))


class FailingInserts(DelegatingStorage):
    """Delegates to a real storage; its next inserts fail with a given error, either before
    anything is written or after the real insert committed (the reply was lost)."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.failures: list[tuple[str, DurableStorageError]] = []  # ("before" | "after", error)
        self.calls: list[list[str]] = []  # the execution ids of each insert call

    def fail(self, when: str, times: int = 1, *, transient: bool = True) -> None:
        error = DurableStorageError("injected: connection lost", is_transient=transient)
        self.failures.extend([(when, error)] * times)

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        self.calls.append([e.execution_id for e in executions])
        when, error = self.failures.pop(0) if self.failures else ("", None)
        if error is not None and when == "before":
            raise error
        ids = await self.inner.insert_executions(executions, now_ms)
        if error is not None:
            raise error
        return ids


def executor_on(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> tuple[DurableExecutor, FailingInserts, Any]:
    failing = FailingInserts(storage)
    executor = make_executor(failing)
    task = executor.task(id="echo", timeout_ms=5000, run=lambda ctx, i: i)
    return executor, failing, task


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("started", [True, False], ids=["started", "not-started"])
async def test_a_transient_failure_is_retried_and_stores_the_execution_once(
    make_executor: Callable[..., DurableExecutor],
    storage: DurableStorage,
    when: str,
    started: bool,
) -> None:
    runs: list[str] = []
    failing = FailingInserts(storage)
    executor = make_executor(failing)

    def record(ctx: TaskContext, input: int) -> int:
        runs.append(ctx.execution_id)
        return input * 2

    task = executor.task(id="double", timeout_ms=5000, run=record)
    if started:  # inserted claimed by this executor (direct dispatch) when started
        await executor.start()
    failing.fail(when, times=2)
    handle = await executor.enqueue_task(task, 21)
    # After a committed attempt, the next one meets its own row and stops there.
    assert len(failing.calls) == (3 if when == "before" else 2)
    assert all(ids == [handle.execution_id] for ids in failing.calls)  # the same id each time
    await executor.start()
    assert (await handle.wait_and_get_execution(timeout=10)).output == 42
    assert runs == [handle.execution_id]


async def test_a_batch_committed_by_a_failed_attempt_keeps_its_idempotency_keys(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, failing, task = executor_on(make_executor, storage)
    earlier = await executor.enqueue_task(task, 0, idempotency_key="k0")
    failing.fail("after")
    handles = (
        await executor.enqueue_task(task, 0, idempotency_key="k0"),
        *(await executor.enqueue_tasks([(task, 1), (task, 2)])),
    )
    assert handles[0].execution_id == earlier.execution_id  # found by its key, as before
    failing.fail("after")
    keyed = await executor.enqueue_task(task, 3, idempotency_key="k3")
    again = await executor.enqueue_task(task, 3, idempotency_key="k3")
    assert keyed.execution_id == again.execution_id
    await executor.start()
    results = await executor.wait_and_get_executions([*handles, keyed], timeout=10)
    assert [r.output for r in results] == [0, 1, 2, 3]


async def test_a_non_transient_failure_is_raised_at_once(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, failing, task = executor_on(make_executor, storage)
    failing.fail("before", transient=False)
    with pytest.raises(DurableStorageError, match="injected") as caught:
        await executor.enqueue_task(task, 1)
    assert caught.value.is_transient is False
    assert len(failing.calls) == 1


async def test_a_lasting_transient_failure_is_raised_after_the_bounded_retries(
    make_executor: Callable[..., DurableExecutor],
    storage: DurableStorage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    executor, failing, task = executor_on(make_executor, storage)
    await executor.start()
    failing.fail("before", times=10)
    with pytest.raises(DurableStorageError, match="injected"):
        await executor.enqueue_task(task, 1)
    assert len(failing.calls) == len(insert_retry.RETRY_DELAYS_S) + 1
    assert len(set(map(tuple, failing.calls))) == 1
    assert (await executor.storage.get_executions(failing.calls[0])) == []
    assert "retrying" in caplog.text
    # Its reserved slot was given back: the executor still runs all it may. A claim in flight
    # holds its own slots for a moment, so the count is polled; a leaked slot never comes back.
    limit = executor.options.max_concurrent_task_executions
    await wait_until(lambda: executor._engine.free_slots() == limit, message="all slots free")
    failing.failures.clear()
    handle = await executor.enqueue_task(task, 2)
    assert (await handle.wait_and_get_execution(timeout=10)).output == 2


async def test_a_real_duplicate_is_not_taken_for_a_committed_retry(storage: DurableStorage) -> None:
    new = NewExecution(execution_id="te_taken", task_id="t", input="1", start_at_ms=0)
    await storage.insert_executions([new], 0)
    other = NewExecution(execution_id="te_taken", task_id="t", input="2", start_at_ms=0)
    failing = FailingInserts(storage)
    failing.fail("before")
    with pytest.raises(DuplicateExecutionError):
        await insert_retry.insert_retrying(failing, [other], 0, logging.getLogger("test"))


# -- real failures of real backends ---------------------------------------------------------


async def test_sqlite_locked_past_its_busy_timeout_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    storage = SQLiteStorage(path, busy_timeout_ms=20)
    async with DurableExecutor(storage, background_process_interval_ms=20) as executor:
        task = executor.task(id="echo", timeout_ms=5000, run=lambda ctx, i: i)
        await executor.enqueue_task(task, 0)  # the schema exists, the connection is open
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN EXCLUSIVE")
        attempts: list[logging.LogRecord] = []

        class Seen(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "retrying" in record.getMessage():
                    attempts.append(record)

        handler = Seen()
        executor.options.logger.addHandler(handler)
        try:
            enqueue = asyncio.create_task(executor.enqueue_task(task, 1))
            await wait_until(lambda: attempts, message="a failed attempt")
            assert "locked" in attempts[0].getMessage()
            await asyncio.to_thread(locker.rollback)
            handle = await asyncio.wait_for(enqueue, 10)
        finally:
            executor.options.logger.removeHandler(handler)
            locker.close()
        assert (await handle.wait_and_get_execution(timeout=10)).output == 1


def test_sqlite_classifies_its_failures() -> None:
    from durable_execution.storage.sqlite.connection import is_transient

    def error(code: int) -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError("x")
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        return exc

    assert is_transient(error(sqlite3.SQLITE_BUSY))
    assert is_transient(error(sqlite3.SQLITE_IOERR | (3 << 8)))  # an extended I/O error code
    assert not is_transient(error(sqlite3.SQLITE_FULL))
    assert not is_transient(error(sqlite3.SQLITE_CONSTRAINT))
    assert not is_transient(sqlite3.OperationalError("no code"))


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are turned off")
@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_connection_killed_during_the_insert_is_retried(
    storage: DurableStorage, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    from .pg import admin_connection

    schema = storage._names.schema  # type: ignore[attr-defined]
    table = f'"{schema}"."de_executions"'
    async with DurableExecutor(storage, background_process_interval_ms=20) as executor:
        task = executor.task(id="echo", timeout_ms=5000, run=lambda ctx, i: i)
        await executor.enqueue_task(task, 0)
        async with await admin_connection() as locker, await admin_connection() as admin:
            await locker.execute("BEGIN")
            await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            enqueue = asyncio.create_task(executor.enqueue_task(task, 1))

            async def blocked_insert() -> list[int]:
                cursor = await admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE %s",
                    [f"%INSERT INTO {table}%"],
                )
                return [row[0] for row in await cursor.fetchall()]

            (pid,) = await wait_until(blocked_insert, message="the insert to wait on the lock")
            await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            await locker.execute("ROLLBACK")
            handle = await asyncio.wait_for(enqueue, 10)
        assert (await handle.wait_and_get_execution(timeout=10)).output == 1
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retried, "the killed insert was not retried"
    assert "terminat" in retried[0]  # the server's own reason, passed on


def test_postgres_classifies_its_failures() -> None:
    pytest.importorskip("psycopg")
    import psycopg

    from durable_execution.storage.postgres.runtime import Runtime
    from durable_execution.storage.postgres.schema import Names

    runtime = Runtime.__new__(Runtime)
    runtime.names = Names("public", "de_")
    lost = runtime._error("insert", psycopg.OperationalError("server closed the connection"))
    assert lost.is_transient
    bad = runtime._error("insert", psycopg.errors.NumericValueOutOfRange("bigint out of range"))
    assert not bad.is_transient
