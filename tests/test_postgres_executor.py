"""Executors on PostgreSQL: enqueue in the application's transaction, dropped connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from durable_execution import (
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    TaskContext,
    UnsupportedByStorageError,
)
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.postgres import PostgresStorage

from .backends import BACKENDS
from .helpers import wait_until

pytestmark = pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL is disabled")

S = DurableTaskExecutionStatus


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    from .pg import fresh_schema

    async with fresh_schema("ex") as name:
        yield name


@pytest.fixture
async def app_connection(schema: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The application's own connection, with its own table in the test schema."""
    from .pg import POSTGRES_DSN

    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(
            sql.SQL("CREATE TABLE {}.orders (id text PRIMARY KEY)").format(sql.Identifier(schema))
        )
        await conn.commit()
        yield conn


async def test_enqueue_inside_the_applications_transaction(
    schema: str, app_connection: psycopg.AsyncConnection[Any]
) -> None:
    from .pg import storage_in

    storage = storage_in(schema)
    executor = DurableExecutor(storage, background_process_interval_ms=20)
    ran: list[str] = []
    task = executor.task(id="ship", timeout_ms=5_000, run=lambda ctx, order: ran.append(order))
    orders = sql.SQL("INSERT INTO {}.orders (id) VALUES (%s)").format(sql.Identifier(schema))
    async with executor:
        # Committed: the order row and the execution appear together.
        await app_connection.execute(orders, ["o-1"])
        kept = await executor.enqueue_task(task, "o-1", connection=app_connection)
        with pytest.raises(DurableExecutionNotFoundError):
            await executor.get_execution(kept.execution_id)  # not visible before the commit
        await app_connection.commit()
        assert (await kept.wait_and_get_execution(timeout=20)).status is S.COMPLETED
        # Rolled back: neither exists, and nothing runs.
        await app_connection.execute(orders, ["o-2"])
        dropped = await executor.enqueue_tasks([(task, "o-2")], connection=app_connection)
        await app_connection.rollback()
        later = await executor.enqueue_task(task, "o-3")
        await later.wait_and_get_execution(timeout=20)
        with pytest.raises(DurableExecutionNotFoundError):
            await executor.get_execution(dropped[0].execution_id)
    assert ran == ["o-1", "o-3"]
    await storage.close()


async def test_enqueue_with_a_connection_needs_a_storage_that_supports_it() -> None:
    executor = DurableExecutor(InMemoryStorage())
    task = executor.task(id="a", timeout_ms=1_000, run=lambda ctx, i: i)
    with pytest.raises(UnsupportedByStorageError, match=r"InMemoryStorage.*TransactionalEnqueue"):
        await executor.enqueue_task(task, 1, connection=object())
    with pytest.raises(UnsupportedByStorageError, match=r"InMemoryStorage.*TransactionalEnqueue"):
        await executor.enqueue_tasks([(task, 1)], connection=object())


async def test_executors_carry_on_when_their_connections_are_killed(schema: str) -> None:
    from .pg import admin_connection, storage_in

    application = f"de_test_ex_{uuid.uuid4().hex[:8]}"
    storages: list[PostgresStorage] = []
    executors: list[DurableExecutor] = []
    for _ in range(2):
        storage = storage_in(schema, application_name=application)
        storages.append(storage)
        executors.append(
            DurableExecutor(
                storage,
                background_process_interval_ms=20,
                expire_leeway_ms=500,
                max_concurrent_task_executions=20,
            )
        )

    async def work(ctx: TaskContext, n: int) -> int:
        await asyncio.sleep(0.02)
        return n

    tasks = [ex.task(id="work", timeout_ms=2_000, run=work) for ex in executors]
    for ex in executors:
        await ex.start()
    try:
        handles = await executors[0].enqueue_tasks([(tasks[0], n) for n in range(300)])

        ids = [h.execution_id for h in handles]

        async def some_done() -> bool:
            return len(await storages[0].find_finished(ids)) >= 20

        await wait_until(some_done, message="the first executions to finish")
        async with await admin_connection() as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [application],
            )
            table = sql.Identifier(schema, "de_executions")
            cur = await admin.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE status = 'completed'").format(table)
            )
            row = await cur.fetchone()
            assert row is not None
            assert row[0] < 300
        results = await executors[0].wait_and_get_executions(handles, timeout=60)
    finally:
        for ex in executors:
            await ex.shutdown()
        for storage in storages:
            await storage.close()
    assert [r.status for r in results] == [S.COMPLETED] * 300
    assert [r.output for r in results] == list(range(300))
