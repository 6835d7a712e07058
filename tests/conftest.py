"""Shared fixtures: every executor test runs on every storage backend.

``storage_factory`` makes fresh, empty storages of the backend under test; ``make_executor``
makes executors on that storage and shuts them down at the end of the test. The tests of
worker processes get a shared store (``store``), a way to start workers on it
(``start_worker``) and an executor of their own on it (``controller``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url
from durable_execution.storage.protocol import DurableStorage

from .backends import BACKENDS, BackendFactory
from .processes import PROCESS_BACKENDS, WORKERS, SharedStore, StartWorker

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
async def timed_storage(storage: DurableStorage) -> AsyncIterator[DurableStorage]:
    """The test's store, through a storage object that keeps the times the test passes as
    ``now_ms`` (to act as an executor whose clock is elsewhere): ``storage`` itself, except on
    PostgreSQL, whose executors' storage keeps the database's clock.

    A test that runs executors on it lists it before ``make_executor``: fixtures are torn down
    in reverse, so the executors stop before it is closed (a closed PostgreSQL storage still
    in use by a running executor opens a new pool, which nothing closes: the event loop then
    hangs at its end, cancelling the pool's workers).

    It is opened before the test starts: a test that computes a time and then calls it would
    otherwise count the pool's opening (connections, schema check) in that time."""
    if getattr(storage, "clock", None) != "database":
        yield storage
        return
    from .pg import storage_in

    timed = storage_in(storage.schema, clock="executor")  # type: ignore[attr-defined]
    try:
        await timed.initialize()
        yield timed
    finally:
        await timed.close()


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


# -- worker processes on one shared store (tests/processes.py) ---------------------------------


@pytest.fixture(params=PROCESS_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SharedStore]:
    if request.param == "sqlite":
        path = tmp_path / "executions.db"
        yield SharedStore("sqlite", f"sqlite:///{path}", sqlite_path=path)
        return
    from .pg import POSTGRES_DSN, SCHEMAS

    schema = await asyncio.to_thread(SCHEMAS.take)
    try:
        yield SharedStore("postgres", f"{POSTGRES_DSN}?schema={schema}")
    finally:
        SCHEMAS.give_back(schema)


@pytest.fixture
async def start_worker(store: SharedStore) -> AsyncIterator[StartWorker]:
    """Start worker processes on the test's store; kill leftovers at the end."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(name: str, *flags: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKERS / "worker.py"),
            store.url,
            name,
            *flags,
            stdout=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"ready", line
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def controller(store: SharedStore) -> AsyncIterator[DurableExecutor]:
    """An executor in the test process on the same store, used to enqueue and read."""
    storage = storage_from_url(store.url)
    executor = DurableExecutor(storage, expire_leeway_ms=100, background_process_interval_ms=20)
    yield executor
    await executor.shutdown()
    await storage.close()
