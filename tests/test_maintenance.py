"""The store's housekeeping (issue 18): PostgreSQL's VACUUM when the server's autovacuum is off
(the WARNING at start, one executor at a time, once per interval), SQLite's incremental vacuum,
and the executor's loop that drives both (``maintenance_interval_ms``)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from durable_execution import DurableExecutor
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.postgres import maintenance
from durable_execution.storage.postgres.schema import Names
from durable_execution.storage.records import NewExecution
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite import maintenance as sqlite_maintenance
from durable_execution.storage.sqlite.maintenance import free_pages

from .backends import BACKENDS
from .helpers import wait_until
from .pg import admin_connection, fresh_schema, storage_in

HOUR_MS = 3_600_000
NOW = 1_700_000_000_000
needs_postgres = pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL is disabled")


def new(execution_id: str, input: str = '"x"') -> NewExecution:
    return NewExecution(execution_id, "task", input, NOW)


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema("mt") as name:
        yield name


async def server_autovacuum() -> bool:
    async with await admin_connection() as conn:
        return await maintenance.autovacuum_is_on(conn)


async def vacuums(schema: str, table: str = "de_executions") -> int:
    """How many times ``table`` was vacuumed (by hand or by autovacuum)."""
    async with await admin_connection() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await (
            await conn.execute(
                "SELECT vacuum_count + autovacuum_count FROM pg_stat_all_tables "
                "WHERE relid = to_regclass(%s)",
                [f'"{schema}"."{table}"'],
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def autovacuum_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The maintenance behaves as on a server whose autovacuum is off, whatever this one's."""

    async def off(conn: Any) -> bool:
        return False

    monkeypatch.setattr(maintenance, "autovacuum_is_on", off)


@needs_postgres
async def test_the_warning_is_logged_once_when_autovacuum_is_off(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One WARNING per storage object, at its first open (not at a reopen, nor per call),
    saying what to do; none when the server's autovacuum is on."""
    storage = storage_in(schema)
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        await storage.initialize()
        assert await storage.insert_executions([new("a")], NOW) == ["a"]
        await storage.close()
        await storage.initialize()
        assert len(await storage.get_executions(["a"])) == 1
        await storage.close()
    warnings = [r.getMessage() for r in caplog.records if "autovacuum is off" in r.getMessage()]
    if await server_autovacuum():
        assert warnings == []
    else:
        assert len(warnings) == 1, warnings
        assert "ALTER SYSTEM SET autovacuum = on" in warnings[0]
        assert f"{schema}.de_executions" in warnings[0]


@needs_postgres
async def test_a_pass_vacuums_the_table_at_most_once_per_interval(
    schema: str, autovacuum_off: None
) -> None:
    storage = storage_in(schema)
    try:
        await storage.insert_executions([new(f"e{i}") for i in range(10)], NOW)
        assert await vacuums(schema) == 0
        assert await storage.maintain(min_interval_ms=HOUR_MS) is True  # never vacuumed
        assert await vacuums(schema) == 1
        assert await storage.maintain(min_interval_ms=HOUR_MS) is False  # just done
        assert await storage.maintain(min_interval_ms=0) is True
        assert await vacuums(schema) == 2
        assert len(await storage.get_executions([f"e{i}" for i in range(10)])) == 10
    finally:
        await storage.close()


@needs_postgres
async def test_one_executor_at_a_time(schema: str, autovacuum_off: None) -> None:
    """While another holds the maintenance lock, a pass does nothing; of passes started
    together, one vacuums."""
    first, second = storage_in(schema), storage_in(schema)
    try:
        await first.initialize()
        key = maintenance.maintenance_lock_key(Names(schema, "de_"))
        async with await admin_connection() as holder:
            await holder.execute("SELECT pg_advisory_lock(%s)", [key])
            assert await first.maintain(min_interval_ms=0) is False
            assert await vacuums(schema) == 0
            await holder.execute("SELECT pg_advisory_unlock(%s)", [key])
        done = await asyncio.gather(
            first.maintain(min_interval_ms=HOUR_MS), second.maintain(min_interval_ms=HOUR_MS)
        )
        assert sorted(done) == [False, True]
        assert await vacuums(schema) == 1
    finally:
        await first.close()
        await second.close()


@needs_postgres
async def test_nothing_when_the_servers_autovacuum_is_on(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def on(conn: Any) -> bool:
        return True

    monkeypatch.setattr(maintenance, "autovacuum_is_on", on)
    storage = storage_in(schema)
    try:
        await storage.initialize()
        assert await storage.maintain(min_interval_ms=0) is False
        assert await vacuums(schema) == 0
    finally:
        await storage.close()


@needs_postgres
async def test_the_table_has_autovacuum_settings_for_a_queue(schema: str) -> None:
    """Migration 8: autovacuum comes after 1% of the table changed, not 20%."""
    storage = storage_in(schema)
    try:
        await storage.initialize()
        async with await admin_connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
                    [f'"{schema}"."de_executions"'],
                )
            ).fetchone()
        assert row is not None
        assert "autovacuum_vacuum_scale_factor=0.01" in row[0]
        assert "autovacuum_vacuum_insert_scale_factor=0.01" in row[0]
    finally:
        await storage.close()


# -- SQLite --------------------------------------------------------------------------------------


def delete_all(path: Path) -> None:
    """What a purge does (another issue's): delete finished rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DELETE FROM de_executions")
    finally:
        conn.close()


def file_state(path: Path) -> tuple[int, int]:
    """``(free pages, bytes of the file)`` after a checkpoint of the log into it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return free_pages(conn), path.stat().st_size
    finally:
        conn.close()


async def fill(storage: SQLiteStorage, rows: int) -> None:
    big = '"' + "x" * 4_000 + '"'
    for first in range(0, rows, 500):
        batch = [new(f"e{i:06d}", big) for i in range(first, min(rows, first + 500))]
        await storage.insert_executions(batch, NOW)


async def test_sqlite_gives_the_space_of_deleted_rows_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages_per_pass = 1_000
    monkeypatch.setattr(sqlite_maintenance, "PAGES_PER_PASS", pages_per_pass)
    path = tmp_path / "store.db"
    storage = SQLiteStorage(path)
    try:
        await fill(storage, 3_000)  # ~12 MB of inputs
        _, full_size = file_state(path)
        delete_all(path)
        free_before, size_before = file_state(path)
        assert free_before > pages_per_pass  # more than one pass to give back
        assert await storage.maintain(min_interval_ms=0) is True
        free_after, size_after = file_state(path)
        assert free_after == free_before - pages_per_pass  # one pass, bounded
        assert size_after < size_before <= full_size
        assert await storage.maintain(min_interval_ms=HOUR_MS) is False  # within its interval
        while await storage.maintain(min_interval_ms=0):
            pass
        free_end, size_end = file_state(path)
        assert free_end == 0
        assert size_end < full_size / 4
    finally:
        await storage.close()


async def test_sqlite_files_of_earlier_releases_are_left_alone(tmp_path: Path) -> None:
    """A file whose first table came before the storage (as with earlier releases) keeps
    ``auto_vacuum = NONE``: nothing to give back without a full ``VACUUM``."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE application_table (x)")
    conn.close()
    storage = SQLiteStorage(path)
    try:
        await fill(storage, 1_000)
        delete_all(path)
        free_before, _ = file_state(path)
        assert free_before > 0
        assert await storage.maintain(min_interval_ms=0) is False
        assert file_state(path)[0] == free_before
    finally:
        await storage.close()


# -- the executor's loop ---------------------------------------------------------------------------


class CountingStorage(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.passes: list[int] = []

    async def maintain(self, *, min_interval_ms: int) -> bool:
        self.passes.append(min_interval_ms)
        return True


async def test_the_executor_asks_for_a_pass_every_interval() -> None:
    storage = CountingStorage()
    async with DurableExecutor(storage, maintenance_interval_ms=20):
        await wait_until(lambda: len(storage.passes) >= 3)
    assert set(storage.passes) == {20}


async def test_the_first_pass_waits_one_interval_and_zero_turns_it_off() -> None:
    for interval_ms in (0, HOUR_MS):
        storage = CountingStorage()
        executor = DurableExecutor(storage, maintenance_interval_ms=interval_ms)
        task = executor.task(id="t", timeout_ms=5_000, run=lambda ctx, i: i)
        async with executor:
            handles = await executor.enqueue_tasks([(task, i) for i in range(50)])
            await executor.wait_until_finished(handles)
        assert storage.passes == []


async def test_a_pass_running_at_shutdown_is_cancelled() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    class SlowStorage(InMemoryStorage):
        async def maintain(self, *, min_interval_ms: int) -> bool:
            started.set()
            try:
                await asyncio.Event().wait()  # a VACUUM that takes forever
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return True

    executor = DurableExecutor(SlowStorage(), maintenance_interval_ms=10, shutdown_timeout_ms=0)
    await executor.start()
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.wait_for(executor.shutdown(), 10)
    assert cancelled.is_set()


@needs_postgres
async def test_postgres_executor_vacuums_when_autovacuum_is_off(
    schema: str, autovacuum_off: None
) -> None:
    """The executor's loop vacuums the executions table and the workers' table."""

    async def both_vacuumed() -> bool:
        return await vacuums(schema) >= 1 and await vacuums(schema, "de_workers") >= 1

    storage = storage_in(schema, clock="database")
    try:
        async with DurableExecutor(storage, maintenance_interval_ms=50):
            await wait_until(both_vacuumed, timeout=30)
    finally:
        await storage.close()


@needs_postgres
async def test_a_pass_gives_way_to_a_lock_on_the_table(schema: str, autovacuum_off: None) -> None:
    """A table locked by someone else (an operator's VACUUM, DDL): the pass gives up after its
    lock timeout, without an error, and vacuums next time."""
    storage = storage_in(schema)
    try:
        await storage.initialize()
        async with await admin_connection() as holder, holder.transaction():
            await holder.execute(
                sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(
                    sql.Identifier(schema, "de_executions")
                )
            )
            assert await storage.maintain(min_interval_ms=0) is False
        assert await vacuums(schema) == 0
        assert await storage.maintain(min_interval_ms=0) is True
    finally:
        await storage.close()
