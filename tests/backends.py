"""The storage backends the suites run on, each as a factory of fresh storages.

A backend factory is an async context manager entered once per test with the test's temporary
directory; it yields ``make()``, which returns a new storage object on the same underlying
store (same file, same database), so tests can run several executors "in several processes".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from durable_execution.storage.abilities import (
    CallerClock,
    ExecutionPurge,
    ExecutionQueries,
    Maintenance,
    SleepingExecutions,
    StampedWrites,
    TransactionalEnqueue,
    TreeRetry,
    WorkerRegistry,
)
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage

Make = Callable[[], Awaitable[DurableStorage]]
BackendFactory = Callable[[Path], contextlib.AbstractAsyncContextManager[Make]]


@contextlib.asynccontextmanager
async def memory_backend(tmp_path: Path) -> AsyncIterator[Make]:
    shared = InMemoryStorage()

    async def make() -> DurableStorage:
        return shared

    yield make


@contextlib.asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Make]:
    path = os.fspath(tmp_path / "executions.db")

    async def make() -> DurableStorage:
        storage = SQLiteStorage(path)
        await storage.initialize()
        return storage

    yield make


BACKENDS: dict[str, BackendFactory] = {
    "memory": memory_backend,
    "sqlite": sqlite_backend,
}

# The optional abilities (storage/abilities.py) of each backend, checked by
# test_storage_abilities.py; test_storage_conformance.py runs the conformance part of each.
ABILITIES: dict[str, frozenset[type]] = {
    "memory": frozenset(
        {
            WorkerRegistry,
            SleepingExecutions,
            ExecutionQueries,
            TreeRetry,
            ExecutionPurge,
            CallerClock,
            StampedWrites,
        }
    ),
    "sqlite": frozenset(
        {
            WorkerRegistry,
            SleepingExecutions,
            ExecutionQueries,
            TreeRetry,
            ExecutionPurge,
            Maintenance,
            CallerClock,
            StampedWrites,
        }
    ),
    "postgres": frozenset(
        {
            TransactionalEnqueue,
            WorkerRegistry,
            SleepingExecutions,
            ExecutionQueries,
            TreeRetry,
            ExecutionPurge,
            Maintenance,
            CallerClock,
            StampedWrites,
        }
    ),
}

# PostgreSQL (see tests/pg.py for the server and the isolation); set
# DURABLE_EXECUTION_TEST_POSTGRES=0 to leave it out where no server is available.
if os.environ.get("DURABLE_EXECUTION_TEST_POSTGRES", "1") != "0":
    from .pg import postgres_backend

    BACKENDS["postgres"] = postgres_backend
