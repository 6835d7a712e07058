"""Conformance of the :class:`~durable_execution.storage.abilities.TransactionalEnqueue`
ability: inserting executions inside a transaction of the caller's."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

from durable_execution.errors import DuplicateExecutionError
from durable_execution.storage.abilities import TransactionalEnqueue, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import NewExecution
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    T0,
    TASK_B,
    Harness,
    assert_new_record,
    assert_same_record,
    ids_of,
    new_execution,
)

__all__ = ["TransactionalEnqueueConformance"]


class _Rollback(Exception):
    """Raised inside a transaction block to have it rolled back."""


class TransactionalEnqueueConformance(ConformanceBase):
    """``insert_executions_in_transaction``: invisible until the caller commits, gone when the
    caller rolls back, otherwise a plain insert.

    Mix it into the test class of a backend that has the ability, beside
    :class:`~durable_execution.testing.StorageConformanceSuite`, and implement
    :meth:`transaction`::

        class TestMyStorage(StorageConformanceSuite, TransactionalEnqueueConformance):
            @contextlib.asynccontextmanager
            async def transaction(self, storage):
                async with await connect(storage.url) as conn:  # a connection of "the caller"
                    async with conn.transaction():
                        yield conn
    """

    __test__ = False
    ability: ClassVar[type] = TransactionalEnqueue
    """The ability this part checks."""

    def transaction(self, storage: DurableStorage) -> AbstractAsyncContextManager[Any]:
        """A transaction of the caller's on the store of ``storage``. Subclasses implement it.

        Entering it opens a new connection (not one of ``storage``'s) and a transaction on it,
        and yields what is passed as ``connection``; leaving it commits, or rolls back when the
        block raises (the exception then goes on), and closes the connection.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement transaction()")

    async def _insert_in(
        self, h: Harness, connection: Any, *executions: NewExecution, now_ms: int = T0
    ) -> list[str]:
        storage = require(h.storage, TransactionalEnqueue, "run this conformance part")
        return await storage.insert_executions_in_transaction(
            list(executions), now_ms, connection=connection
        )

    async def _rolled_back(
        self, h: Harness, executions: Sequence[NewExecution], error: type[Exception]
    ) -> None:
        """Insert ``executions`` in a transaction that ends with ``error`` (raised by the
        insert, or else by the block), which must reach the caller."""
        try:
            async with self.transaction(h.storage) as connection:
                await self._insert_in(h, connection, *executions)
                raise _Rollback
        except error:
            return
        except _Rollback as exc:
            raise AssertionError(f"the insert did not raise {error.__name__}") from exc
        raise AssertionError("transaction() swallowed the exception raised in its block")

    def test_insert_is_invisible_until_the_caller_commits(self) -> None:
        """Inside the transaction, nothing is seen or claimed through storage objects; after
        the commit, the executions are stored as by a plain insert, and claimable."""

        async def body(h: Harness) -> None:
            other = await h.connect()
            first = new_execution("tx-a", priority=1)
            second = new_execution("tx-b", TASK_B, start_at_ms=T0 - 5)
            async with self.transaction(h.storage) as connection:
                assert await self._insert_in(h, connection, first, now_ms=T0 + 3) == ["tx-a"]
                assert await self._insert_in(h, connection, second, now_ms=T0 + 4) == ["tx-b"]
                assert await self._insert_in(h, connection) == []
                for storage in (h.storage, other):
                    assert await storage.get_executions(["tx-a", "tx-b"]) == []
                    assert await h.claim(storage=storage, now_ms=T0 + 10) == []
            assert_new_record(await h.get("tx-a"), first, T0 + 3)
            assert_new_record(await h.get("tx-b"), second, T0 + 4)
            assert ids_of(await h.claim(storage=other, now_ms=T0 + 10)) == ["tx-a", "tx-b"]

        self.run_scenario(body)

    def test_a_rollback_stores_nothing(self) -> None:
        """After a rollback, neither the executions nor their ids or keys are taken."""

        async def body(h: Harness) -> None:
            news = [new_execution("rb-a", idempotency_key="rb-key"), new_execution("rb-b")]
            await self._rolled_back(h, news, _Rollback)
            assert await h.storage.get_executions(["rb-a", "rb-b"]) == []
            assert await h.claim(now_ms=T0 + 10) == []
            again = new_execution("rb-c", idempotency_key="rb-key")
            assert await h.insert(new_execution("rb-a"), again) == ["rb-a", "rb-c"]

        self.run_scenario(body)

    def test_duplicate_id_raises_and_the_caller_rolls_back(self) -> None:
        """A duplicate id raises DuplicateExecutionError; after the rollback nothing of the
        batch is stored and the stored execution is unchanged."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("dup-tx", input="original"))
            before = h["dup-tx"]
            news = [new_execution("dup-fresh"), new_execution("dup-tx", input="other")]
            await self._rolled_back(h, news, DuplicateExecutionError)
            assert await h.storage.get_executions(["dup-fresh"]) == []
            assert_same_record(await h.get("dup-tx"), before)

        self.run_scenario(body)

    def test_idempotency_keys_as_in_a_plain_insert(self) -> None:
        """A key already stored, or repeated in the batch, returns the first execution's id and
        inserts nothing; a key committed in a transaction is taken for later inserts."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("ik-stored", idempotency_key="ik-1"))
            before = h["ik-stored"]
            news = [
                new_execution("ik-again", TASK_B, idempotency_key="ik-1", input="again"),
                new_execution("ik-new", idempotency_key="ik-2"),
                new_execution("ik-twin", idempotency_key="ik-2"),
                new_execution("ik-plain"),
            ]
            async with self.transaction(h.storage) as connection:
                ids = await self._insert_in(h, connection, *news, now_ms=T0 + 1)
                assert ids == ["ik-stored", "ik-new", "ik-new", "ik-plain"]
            stored = await h.storage.get_executions([n.execution_id for n in news])
            assert ids_of(stored) == ["ik-new", "ik-plain"]
            assert_same_record(await h.get("ik-stored"), before)
            later = new_execution("ik-later", idempotency_key="ik-2")
            assert await h.insert(later, now_ms=T0 + 2) == ["ik-new"]
            assert await h.storage.get_executions(["ik-later"]) == []

        self.run_scenario(body)
