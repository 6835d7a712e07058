"""Group commit: concurrent ``enqueue_task`` calls share inserts (executor/group_commit.py),
each caller returning once its executions committed, and failing only for its own fault."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from durable_execution import (
    DurableExecutor,
    DurableStorageError,
    DurableTaskExecutionStatus,
    DurableTaskHandle,
    IdempotencyConflictError,
    TaskContext,
)
from durable_execution.executor import insert_retry
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import NewExecution
from durable_execution.testing import DelegatingStorage

from .backends import BACKENDS
from .helpers import wait_until

S = DurableTaskExecutionStatus


@pytest.fixture(autouse=True)
def short_retry_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(insert_retry, "RETRY_DELAYS_S", (0.001, 0.002, 0.004))


class Inserts(DelegatingStorage):
    """Delegates to a real storage, logging each insert call. Each insert takes at least a
    loop iteration (as I/O does, even in memory), waits while ``gate`` is closed, and fails
    when told: a non-transient error for any call holding a ``refused`` input, or, for the
    next calls of more than one execution (shared inserts), a transient error raised before
    the real insert (``outages``) or after it committed (``lost_replies``)."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.calls: list[list[NewExecution]] = []
        self.tasks: list[asyncio.Task[Any] | None] = []  # the task making each call
        self.committed: set[str] = set()  # the ids of the inserts that returned
        self.gate = asyncio.Event()
        self.gate.set()
        self.refused: set[str] = set()
        self.outages = 0
        self.lost_replies = 0

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        self.calls.append(list(executions))
        self.tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        await self.gate.wait()
        if any(e.input in self.refused for e in executions):
            raise DurableStorageError("refused: a value out of range", is_transient=False)
        shared = len(executions) > 1
        if shared and self.outages:
            self.outages -= 1
            raise DurableStorageError("injected: database restarting", is_transient=True)
        ids = await self.inner.insert_executions(executions, now_ms)
        if shared and self.lost_replies:
            self.lost_replies -= 1
            raise DurableStorageError("injected: connection lost", is_transient=True)
        self.committed.update(ids)
        return ids

    def inputs(self, call: int) -> list[str]:
        return [e.input for e in self.calls[call]]


async def _echo(ctx: TaskContext, i: Any) -> Any:
    return i


def executor_on(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> tuple[DurableExecutor, Inserts, Any]:
    """An executor whose inserts are recorded, with an async task (sync ones are dispatched
    only as far as threads are free: see tests/test_task_threads.py)."""
    inserts = Inserts(storage)
    executor = make_executor(inserts)
    task = executor.task(id="echo", timeout_ms=10_000, run=_echo)
    return executor, inserts, task


async def test_a_lone_enqueue_inserts_at_once_in_its_own_task(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    for i in range(3):
        handle = await executor.enqueue_task(task, i)
        assert handle.execution_id in inserts.committed
    assert inserts.tasks == [asyncio.current_task()] * 3  # no hop through another task


async def test_concurrent_enqueues_share_inserts_and_return_once_committed(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()

    async def enqueue(i: int) -> DurableTaskHandle[Any]:
        handle = await executor.enqueue_task(task, i)
        assert handle.execution_id in inserts.committed  # durable when the call returns
        return handle

    handles = await asyncio.gather(*(enqueue(i) for i in range(50)))
    # The first inserts alone at once; the others arrive while it is in flight, and share one.
    assert [len(call) for call in inserts.calls] == [1, 49]
    assert len({h.execution_id for h in handles}) == 50
    # The shared insert dispatched its executions directly, claimed by this executor.
    assert all(e.claimed_by == executor.executor_id for e in inserts.calls[1])
    results = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in results] == list(range(50))


async def test_an_idempotency_conflict_fails_only_its_own_caller(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    first = await executor.enqueue_task(task, "a", idempotency_key="k")
    results = await asyncio.gather(
        executor.enqueue_task(task, 0),
        executor.enqueue_task(task, 1),
        executor.enqueue_task(task, "b", idempotency_key="k"),  # other work under the key
        executor.enqueue_task(task, "a", idempotency_key="k"),  # the same work
        executor.enqueue_task(task, "c", idempotency_key="k2"),  # twice in one batch
        executor.enqueue_task(task, "c", idempotency_key="k2"),
        executor.enqueue_task(task, 2),
        return_exceptions=True,
    )
    # One alone (before the start: the whole chain, which initializes the storage), then the
    # calls made together, in one batch.
    assert [len(call) for call in inserts.calls] == [1, 7]
    conflict = results[2]
    assert isinstance(conflict, IdempotencyConflictError)
    assert str(conflict) == (
        f"Idempotency key 'k' of task echo is already used by execution {first.execution_id} "
        "with another input: use another key for other work"
    )
    handles = [r for r in results if isinstance(r, DurableTaskHandle)]
    assert len(handles) == 6
    assert results[3].execution_id == first.execution_id  # type: ignore[union-attr]
    assert results[4].execution_id == results[5].execution_id  # type: ignore[union-attr]
    await executor.start()
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == [0, 1, "a", "c", "c", 2]


async def test_a_refused_part_fails_only_its_caller_with_its_own_error(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    inserts.refused.add('"poison"')
    with pytest.raises(DurableStorageError) as alone:
        await executor.enqueue_task(task, "poison")
    inserts.calls.clear()
    results = await asyncio.gather(
        *(executor.enqueue_task(task, i) for i in range(3)),
        executor.enqueue_task(task, "poison"),
        executor.enqueue_tasks([(task, 3), (task, 4)]),
        return_exceptions=True,
    )
    refused = results[3]
    assert isinstance(refused, DurableStorageError)
    assert (str(refused), refused.is_transient) == (str(alone.value), False)
    # The batch failed whole, then each part was inserted alone: only the refused one failed.
    assert [inserts.inputs(i) for i in range(len(inserts.calls))] == [
        ["0", "1", "2", '"poison"', "3", "4"],
        ["0"],
        ["1"],
        ["2"],
        ['"poison"'],
        ["3", "4"],
    ]
    handles = [*results[:3], *results[4]]  # type: ignore[misc]
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == [0, 1, 2, 3, 4]


async def test_a_transient_failure_is_retried_for_the_whole_group(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    inserts.gate.clear()
    leader = asyncio.create_task(executor.enqueue_task(task, 0))
    await wait_until(lambda: inserts.calls, message="the first insert")
    group = asyncio.gather(*(executor.enqueue_task(task, i) for i in range(1, 5)))
    await wait_until(lambda: len(executor._inserts._waiting) == 4, message="the others to queue")
    inserts.lost_replies = 1  # the shared insert's first attempt commits, then its reply is lost
    inserts.gate.set()
    await leader
    handles = await group
    assert [inserts.inputs(i) for i in range(len(inserts.calls))] == [
        ["0"],
        ["1", "2", "3", "4"],
        ["1", "2", "3", "4"],  # the retry meets its own rows: no second execution
    ]
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == [1, 2, 3, 4]
    assert all(r.retry_attempts == 0 for r in finished)


async def test_a_lasting_transient_failure_fails_every_caller_of_the_group(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    inserts.gate.clear()
    leader = asyncio.create_task(executor.enqueue_task(task, 0))
    await wait_until(lambda: inserts.calls, message="the first insert")
    group = asyncio.gather(
        *(executor.enqueue_task(task, i) for i in range(1, 4)), return_exceptions=True
    )
    await wait_until(lambda: len(executor._inserts._waiting) == 3, message="the others to queue")
    inserts.outages = 100
    inserts.gate.set()
    first = await leader
    results = await group
    assert all(isinstance(r, DurableStorageError) and r.is_transient for r in results)
    assert len(inserts.calls) == 1 + len(insert_retry.RETRY_DELAYS_S) + 1
    # Nothing of the group is left claimed and idle: its slots were given back (once the
    # leader's own execution, which may be running now, has given back its slot).
    assert (await first.wait_and_get_execution(timeout=20)).output == 0
    await wait_until(
        lambda: executor._engine.free_slots() == executor.options.max_concurrent_task_executions,
        message="every slot given back",
    )
    inserts.outages = 0
    handle = await executor.enqueue_task(task, 9)
    assert (await handle.wait_and_get_execution(timeout=20)).output == 9


async def test_a_caller_cancelled_before_its_batch_starts_is_left_out(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    inserts.gate.clear()
    leader = asyncio.create_task(executor.enqueue_task(task, 0))
    await wait_until(lambda: inserts.calls, message="the first insert")
    cancelled = asyncio.create_task(executor.enqueue_task(task, 1))
    kept = asyncio.create_task(executor.enqueue_task(task, 2))
    await wait_until(lambda: len(executor._inserts._waiting) == 2, message="the others to queue")
    cancelled.cancel()
    inserts.gate.set()
    handles = [await leader, await kept]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert [inserts.inputs(i) for i in range(len(inserts.calls))] == [["0"], ["2"]]
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == [0, 2]


async def test_a_caller_cancelled_while_its_batch_is_in_flight_is_still_inserted_and_run(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    inserts.gate.clear()
    leader = asyncio.create_task(executor.enqueue_task(task, 0))
    await wait_until(lambda: inserts.calls, message="the first insert")
    cancelled = asyncio.create_task(executor.enqueue_task(task, 1))
    kept = asyncio.create_task(executor.enqueue_task(task, 2))
    await wait_until(lambda: len(executor._inserts._waiting) == 2, message="the others to queue")
    inserts.gate.set()  # lets the first insert through, and closes again behind it
    inserts.gate.clear()
    await leader
    await wait_until(lambda: len(inserts.calls) == 2, message="the shared insert")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    inserts.gate.set()
    await kept
    ids = [e.execution_id for e in inserts.calls[1]]
    assert inserts.inputs(1) == ["1", "2"]

    async def all_completed() -> bool:
        records = await storage.get_executions(ids)
        return len(records) == 2 and all(r.status is S.COMPLETED for r in records)

    # The cancelled caller's execution was committed with the batch, and run here at once.
    await wait_until(all_completed, message="both executions to complete")


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are turned off")
@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_enqueue_in_the_callers_transaction_is_never_grouped(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage, backend: str
) -> None:
    import psycopg

    from .pg import POSTGRES_DSN

    class TransactionalInserts(Inserts):
        async def insert_executions_in_transaction(
            self, executions: Sequence[NewExecution], now_ms: int, *, connection: Any
        ) -> list[str]:
            ids: list[str] = await self.forward(
                "insert_executions_in_transaction", executions, now_ms, connection=connection
            )
            return ids

    inserts = TransactionalInserts(storage)
    executor = make_executor(inserts)
    task = executor.task(id="echo", timeout_ms=10_000, run=lambda ctx, i: i)
    await executor.start()
    inserts.gate.clear()
    leader = asyncio.create_task(executor.enqueue_task(task, 0))
    await wait_until(lambda: inserts.calls, message="the first insert")
    queued = asyncio.create_task(executor.enqueue_task(task, 1))
    await wait_until(lambda: len(executor._inserts._waiting) == 1, message="one to queue")
    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN) as conn:
        # Not queued behind the insert in flight: it returns while that one is held.
        handle = await asyncio.wait_for(executor.enqueue_task(task, 2, connection=conn), 10)
        await conn.commit()
    inserts.gate.set()
    handles = [await leader, await queued, handle]
    assert [inserts.inputs(i) for i in range(len(inserts.calls))] == [["0"], ["1"]]
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == [0, 1, 2]
