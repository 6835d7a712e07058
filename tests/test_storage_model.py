"""The model-based tests of the storage contract (``durable_execution.testing.model``) on every
backend of ``tests/backends.py``.

Short by default (a fixed set of examples, the same at every run, a few seconds per backend);
``DE_MODEL_EXAMPLES=2000`` runs that many random examples per backend, longer sequences, with
Hypothesis' example database in ``.hypothesis/`` (a failure found is replayed first next time).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

if "durable_execution.testing" not in sys.modules:  # show detailed assertion failures
    pytest.register_assert_rewrite("durable_execution.testing")

from hypothesis import HealthCheck, Phase, settings

from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.schema import TABLE
from durable_execution.testing.model import EmptyStorage, run_storage_model

from .backends import BACKENDS

LONG_RUN = int(os.environ.get("DE_MODEL_EXAMPLES", "0"))
# Without the explain phase: on Python 3.11 it traces every line, which makes it take minutes.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]

# Passing takes seconds; a failure is then shrunk, for up to Hypothesis' own limit (5 minutes).
pytestmark = pytest.mark.timeout(0 if LONG_RUN else 420)


def _settings() -> settings:
    if LONG_RUN:
        return settings(
            max_examples=LONG_RUN,
            stateful_step_count=60,
            deadline=None,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow],
        )
    return settings(
        max_examples=50,
        stateful_step_count=50,
        deadline=None,
        derandomize=True,
        database=None,
        phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow],
    )


@contextlib.asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[EmptyStorage]:
    async def empty() -> DurableStorage:
        return InMemoryStorage()

    yield empty


@contextlib.asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[EmptyStorage]:
    """One file and one storage for the whole run, emptied before each example."""
    path = tmp_path / "model.db"
    storage = SQLiteStorage(path)
    await storage.initialize()

    async def empty() -> DurableStorage:
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(f"DELETE FROM {TABLE}")
        return storage

    try:
        yield empty
    finally:
        await storage.close()


@contextlib.asynccontextmanager
async def _postgres(tmp_path: Path) -> AsyncIterator[EmptyStorage]:
    """One fresh schema and one storage (on the executors' clock: the times the machine
    passes are the times stored) for the whole run, emptied before each example."""
    from psycopg import sql

    from durable_execution.storage.postgres.schema import Names

    from .pg import SCHEMAS, admin_connection, storage_in

    schema = await asyncio.to_thread(SCHEMAS.take)
    storage = storage_in(schema, clock="executor")
    admin = await admin_connection()
    delete = sql.SQL("DELETE FROM {}").format(Names(schema, "de_").table)

    async def empty() -> DurableStorage:
        await admin.execute(delete)
        return storage

    try:
        yield empty
    finally:
        await storage.close()
        await admin.close()
        SCHEMAS.give_back(schema)


MODEL_BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[EmptyStorage]]]
MODEL_BACKENDS = {"memory": _memory, "sqlite": _sqlite}
if "postgres" in BACKENDS:
    MODEL_BACKENDS["postgres"] = _postgres


def test_every_backend_is_modelled() -> None:
    assert set(MODEL_BACKENDS) == set(BACKENDS)


@pytest.mark.parametrize("backend", list(MODEL_BACKENDS))
def test_storage_keeps_the_model(backend: str, tmp_path: Path) -> None:
    run_storage_model(MODEL_BACKENDS[backend](tmp_path), _settings())
