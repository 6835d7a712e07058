"""Optional storage abilities: which backend has which, and what a missing one raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable_execution import DurableError, DurableExecutor, UnsupportedByStorageError
from durable_execution.storage import abilities
from durable_execution.storage.abilities import TransactionalEnqueue, require
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage

from .backends import ABILITIES, BACKENDS

ALL_ABILITIES = [getattr(abilities, name) for name in abilities.__all__ if name != "require"]

IN_TRANSACTION = "enqueue inside the caller's transaction"


def test_every_ability_is_a_runtime_checkable_protocol() -> None:
    assert TransactionalEnqueue in ALL_ABILITIES
    for ability in ALL_ABILITIES:
        assert getattr(ability, "_is_runtime_protocol", False), ability


def test_each_backend_has_exactly_its_abilities(backend: str, storage: DurableStorage) -> None:
    has = {ability for ability in ALL_ABILITIES if isinstance(storage, ability)}
    assert has == ABILITIES[backend]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_require_names_the_storage_and_the_ability(kind: str, tmp_path: Path) -> None:
    storage = InMemoryStorage() if kind == "memory" else SQLiteStorage(tmp_path / "x.db")
    with pytest.raises(UnsupportedByStorageError) as info:
        require(storage, TransactionalEnqueue, IN_TRANSACTION)
    error = info.value
    assert isinstance(error, DurableError)
    assert isinstance(error, NotImplementedError)
    assert (error.storage, error.ability) == (repr(storage), "TransactionalEnqueue")
    message = str(error)
    assert repr(storage) in message
    assert ("InMemoryStorage" if kind == "memory" else "SQLiteStorage") in message
    assert "TransactionalEnqueue" in message
    assert IN_TRANSACTION in message


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL is disabled")
def test_require_returns_a_storage_that_has_the_ability() -> None:
    from .pg import storage_in

    storage = storage_in("public")  # never connects: nothing is called on it
    assert require(storage, TransactionalEnqueue, IN_TRANSACTION) is storage


def test_require_refuses_what_is_not_an_ability() -> None:
    with pytest.raises(TypeError, match="Expected an ability protocol"):
        require(InMemoryStorage(), lambda: None, IN_TRANSACTION)


async def test_enqueue_in_a_transaction_without_the_ability_stores_nothing(
    tmp_path: Path,
) -> None:
    storage = SQLiteStorage(tmp_path / "x.db")
    executor = DurableExecutor(storage)
    task = executor.task(id="a", timeout_ms=1_000, run=lambda ctx, i: i)
    try:
        with pytest.raises(UnsupportedByStorageError, match=r"SQLiteStorage.*Transactional"):
            await executor.enqueue_task(task, 1, connection=object())
        with pytest.raises(UnsupportedByStorageError, match=r"SQLiteStorage.*Transactional"):
            await executor.enqueue_tasks([(task, 2)], connection=object())
        await storage.initialize()
        claimed = await storage.claim_ready_executions(
            executor_id="probe", lease_ms_by_task={"a": 1_000}, now_ms=2**62, limit=10
        )
        assert claimed == []
    finally:
        await executor.shutdown()
        await storage.close()
