"""The storage conformance suite on every backend of ``tests/backends.py``.

One test class per entry of ``BACKENDS`` (``TestStorageConformance<Name>``), so a backend
added there is covered here without further change; it also runs the conformance part of each
optional ability the backend has (``ABILITIES`` there, ``ABILITY_PARTS`` here). Each test
enters the backend's factory with a fresh temporary directory inside its own event loop, and
leaves it when the suite disposes of the test's first storage (which it does last).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest

if "durable_execution.testing" not in sys.modules:  # show detailed assertion failures
    pytest.register_assert_rewrite("durable_execution.testing")

from durable_execution.storage.protocol import DurableStorage
from durable_execution.testing import (
    CallerClockConformance,
    ExecutionPurgeConformance,
    ExecutionQueriesConformance,
    MaintenanceConformance,
    SleepingExecutionsConformance,
    StampedWritesConformance,
    StorageConformanceSuite,
    TransactionalEnqueueConformance,
    TreeRetryConformance,
    WorkerRegistryConformance,
)
from durable_execution.testing.base import ConformanceBase

from .backends import ABILITIES, BACKENDS, Make


class _Backend(ConformanceBase):
    """Storages of the backend named ``backend`` (PostgreSQL's on ``clock``)."""

    __test__ = False
    backend: ClassVar[str]
    # The suite passes its own clock (now_ms) and checks it.
    clock: ClassVar[str] = "executor"

    _stack: contextlib.AsyncExitStack
    _make: Make
    _first: DurableStorage

    async def create_storage(self) -> DurableStorage:
        stack = contextlib.AsyncExitStack()
        try:
            directory = stack.enter_context(
                tempfile.TemporaryDirectory(prefix=f"conformance-{self.backend}-")
            )
            factory = BACKENDS[self.backend]
            if self.backend == "postgres":
                factory = functools.partial(factory, clock=self.clock)
            self._make = await stack.enter_async_context(factory(Path(directory)))
            self._first = await self._make()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self._first

    async def reconnect(self, storage: DurableStorage) -> DurableStorage:
        return await self._make()

    async def dispose(self, storage: DurableStorage) -> None:
        await storage.close()
        if storage is self._first:
            await self._stack.aclose()


class _BackendConformance(_Backend, StorageConformanceSuite):
    """The suite on the backend named ``backend``; subclasses are made below."""

    __test__ = False


class _PostgresTransactions(TransactionalEnqueueConformance):
    """The caller's transactions: a psycopg connection of its own on the test server."""

    __test__ = False

    def transaction(self, storage: DurableStorage) -> contextlib.AbstractAsyncContextManager[Any]:
        from .pg import caller_transaction

        return caller_transaction()


_COMMON_PARTS = (
    WorkerRegistryConformance,
    SleepingExecutionsConformance,
    ExecutionQueriesConformance,
    TreeRetryConformance,
    ExecutionPurgeConformance,
    CallerClockConformance,  # PostgreSQL's suite runs with clock="executor"
    StampedWritesConformance,
)

# The conformance parts of the optional abilities, by backend (see ABILITIES).
ABILITY_PARTS: dict[str, tuple[type[Any], ...]] = {
    "memory": (*_COMMON_PARTS,),
    "sqlite": (*_COMMON_PARTS, MaintenanceConformance),
    "postgres": (_PostgresTransactions, *_COMMON_PARTS, MaintenanceConformance),
}


def _conformance_class(backend: str) -> type[_BackendConformance]:
    name = "TestStorageConformance" + "".join(p.title() for p in backend.split("_"))
    bases: tuple[type, ...] = (_BackendConformance, *ABILITY_PARTS.get(backend, ()))
    return type(name, bases, {"backend": backend, "__module__": __name__})


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_part_of_each_ability_runs(backend: str) -> None:
    """Every ability a backend has is checked by its conformance part, and only those."""
    assert {part.ability for part in ABILITY_PARTS.get(backend, ())} == ABILITIES[backend]


for _backend in BACKENDS:
    _cls = _conformance_class(_backend)
    globals()[_cls.__name__] = _cls
del _backend, _cls


class TestDelegatingStorageConformance(StorageConformanceSuite):
    """``DelegatingStorage`` forwards every operation: around an in-memory storage, it keeps
    the whole contract (a forgotten or miswired method fails here)."""

    async def create_storage(self) -> DurableStorage:
        from durable_execution.storage.memory import InMemoryStorage
        from durable_execution.testing import DelegatingStorage

        storage = DelegatingStorage(InMemoryStorage())
        assert isinstance(storage, DurableStorage)
        return storage


class TestStampedWritesOnTheDatabaseClock(_Backend, StampedWritesConformance):
    """PostgreSQL's default clock, the server's, which its executors use: the stamps are the
    server's times, and what executors compute from them is what the storage holds."""

    backend = "postgres"
    clock = "database"


if "postgres" not in BACKENDS:
    del TestStampedWritesOnTheDatabaseClock
