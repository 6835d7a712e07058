"""Shared fixtures: every executor test runs on every storage backend.

``storage_factory`` makes fresh, empty storages of the backend under test; ``make_executor``
makes executors on that storage and shuts them down at the end of the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from durable_execution import DurableExecutor
from durable_execution.storage.protocol import DurableStorage

from .backends import BACKENDS, BackendFactory

StorageFactory = Callable[[], Awaitable[DurableStorage]]


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def storage_factory(backend: str, tmp_path: Path) -> AsyncIterator[StorageFactory]:
    """Creates storages sharing one backend instance (one file, one database) per test."""
    factory: BackendFactory = BACKENDS[backend]
    created: list[DurableStorage] = []
    async with factory(tmp_path) as make:

        async def new_storage() -> DurableStorage:
            storage = await make()
            created.append(storage)
            return storage

        yield new_storage
        for storage in created:
            await storage.close()


@pytest.fixture
async def storage(storage_factory: StorageFactory) -> DurableStorage:
    return await storage_factory()


@pytest.fixture
async def make_executor(
    storage: DurableStorage,
) -> AsyncIterator[Callable[..., DurableExecutor]]:
    """``make_executor(**options)``: an executor on the test's storage, shut down afterwards.

    Defaults favour fast tests: a short poll interval and a short shutdown wait.
    """
    executors: list[DurableExecutor] = []

    def make(storage_: DurableStorage | None = None, **options: Any) -> DurableExecutor:
        options.setdefault("background_process_interval_ms", 20)
        options.setdefault("shutdown_timeout_ms", 2_000)
        executor = DurableExecutor(storage_ or storage, **options)
        executors.append(executor)
        return executor

    yield make
    await asyncio.gather(*(executor.shutdown() for executor in executors))


@pytest.fixture
async def executor(make_executor: Callable[..., DurableExecutor]) -> DurableExecutor:
    """A default test executor, not yet started (define tasks, then ``await executor.start()``)."""
    return make_executor()
