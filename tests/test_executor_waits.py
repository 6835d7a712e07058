"""Waits and reads through the executor: answered from memory once final, coalesced otherwise,
and the record from memory always the one the storage holds. On every backend."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DurableExecutionError,
    DurableExecutor,
    DurableTask,
    DurableTaskExecution,
    DurableTaskExecutionStatus,
    DurableTaskHandle,
    TaskContext,
)
from durable_execution.errors import DurableStorageError
from durable_execution.storage.abilities import CallerClock
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionOutcome, NewExecution
from durable_execution.testing import DelegatingStorage

from .helpers import wait_until

S = DurableTaskExecutionStatus
READS = ("get_executions", "find_finished")


class Counting(DelegatingStorage):
    """Counts each operation; ``get_executions`` fails while ``failing`` is set."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.calls = collections.Counter[str]()
        self.failing = False

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls[name] += 1
        if name == "get_executions" and self.failing:
            raise DurableStorageError("injected read failure")
        return await super().forward(name, *args, **kwargs)

    def reads(self) -> int:
        return sum(self.calls[name] for name in READS)


@pytest.fixture
def counting(storage: DurableStorage) -> Counting:
    return Counting(storage)


@pytest.fixture
def counted_executor(
    make_executor: Callable[..., DurableExecutor], counting: Counting
) -> DurableExecutor:
    return make_executor(counting)


async def stored(storage: DurableStorage, handle: DurableTaskHandle[Any]) -> Any:
    """The execution's record, read from the storage itself."""
    (record,) = await storage.get_executions([handle.execution_id])
    return record


async def test_a_wait_on_an_execution_finished_here_makes_no_storage_call(
    counted_executor: DurableExecutor, counting: Counting
) -> None:
    executor = counted_executor
    task = executor.task(id="double", timeout_ms=5_000, run=lambda ctx, i: i * 2)
    await executor.start()
    handle = await executor.enqueue_task(task, 21)
    first = await handle.wait_and_get_execution(timeout=10)
    assert first.output == 42
    counting.calls.clear()
    assert await handle.wait_and_get_execution(timeout=0) == first
    assert await executor.wait_and_get_executions([handle, handle]) == [first, first]
    assert await handle.get_execution() == first
    assert await executor.get_execution(handle.execution_id) == first
    await executor.wait_until_finished([handle], timeout=0)
    assert counting.reads() == 0
    record = await stored(counting.inner, handle)
    assert first == DurableTaskExecution.from_record(record, executor.options.serializer)


async def test_gathered_waits_share_one_read_per_wake_up(
    counted_executor: DurableExecutor, counting: Counting
) -> None:
    executor = counted_executor
    release = asyncio.Event()

    async def gated(ctx: TaskContext, n: int) -> int:
        await release.wait()
        return n

    task = executor.task(id="gated", timeout_ms=10_000, run=gated)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(200)])
    waits = asyncio.gather(*(h.wait_and_get_execution(timeout=20) for h in handles))
    await wait_until(lambda: len(executor._engine.running) == 200, message="all running")
    counting.calls.clear()
    release.set()  # they finish together: a few outcome writes, as many wake-ups
    executions = await waits
    assert [e.output for e in executions] == list(range(200))
    wake_ups = counting.calls["record_outcomes"] + counting.calls["find_finished"]
    assert counting.calls["get_executions"] <= wake_ups
    assert counting.calls["get_executions"] <= 10, counting.calls


class CountingCallerClock(Counting):
    """:class:`Counting`, keeping the ``CallerClock`` ability of the storage it wraps."""

    def stores_caller_times(self) -> bool:
        inner = self.inner
        return isinstance(inner, CallerClock) and inner.stores_caller_times()


class CountingStamped(Counting):
    """:class:`Counting`, keeping the ``StampedWrites`` ability of the storage it wraps."""

    async def insert_executions_stamped(
        self, executions: list[NewExecution], now_ms: int
    ) -> tuple[list[str], int | None]:
        told: tuple[list[str], int | None] = await self.forward(
            "insert_executions_stamped", executions, now_ms
        )
        return told

    async def record_outcomes_stamped(
        self, outcomes: list[ExecutionOutcome], now_ms: int
    ) -> list[int | None]:
        stamps: list[int | None] = await self.forward("record_outcomes_stamped", outcomes, now_ms)
        return stamps


@pytest.mark.parametrize("knows", ["caller_clock", "stamps"])
@pytest.mark.parametrize("together", [False, True], ids=["gathered", "wait_and_get_executions"])
@pytest.mark.parametrize("claimed", [False, True], ids=["dispatched", "claimed"])
async def test_waits_on_roots_completed_here_are_answered_without_a_read(
    timed_storage: DurableStorage,  # before make_executor: closed after the executors stop
    storage: DurableStorage,
    make_executor: Callable[..., DurableExecutor],
    claimed: bool,
    together: bool,
    knows: str,
) -> None:
    """On a storage that stores the executor's times (``caller_clock``: PostgreSQL with
    ``clock="executor"``), or that tells the times it stamped (``stamps``: PostgreSQL's
    default clock, the server's; the other backends through a wrapper that keeps that ability
    alone), the record of a root completed here is computed, not read back, whether this
    executor claimed it or inserted it claimed: gathered waits, or one
    ``wait_and_get_executions``, make no read, and each execution is the one a read of the
    storage gives."""
    if knows == "caller_clock":
        inner, counting = timed_storage, CountingCallerClock(timed_storage)
        assert counting.stores_caller_times()
    else:
        inner, counting = storage, CountingStamped(storage)
        assert not isinstance(counting, CallerClock)
    executor = make_executor(counting)
    release = asyncio.Event()

    async def gated(ctx: TaskContext, n: int) -> dict[str, int]:
        await release.wait()
        return {"n": n}

    task = executor.task(id="gated", timeout_ms=10_000, run=gated)
    inputs = [(task, n) for n in range(50)]
    if claimed:  # enqueued before the start: claimed from the storage, not dispatched
        handles = await executor.enqueue_tasks(inputs)
        await executor.start()
    else:  # enqueued by the running executor: inserted claimed by it (direct dispatch)
        await executor.start()
        handles = await executor.enqueue_tasks(inputs)
    waits = (
        asyncio.ensure_future(executor.wait_and_get_executions(handles, timeout=20))
        if together
        else asyncio.gather(*(h.wait_and_get_execution(timeout=20) for h in handles))
    )
    await wait_until(lambda: len(executor._engine.running) == 50, message="all running")
    await wait_until(
        lambda: len(executor._engine.waiters.pending_ids()) == 50, message="all awaited"
    )
    counting.calls.clear()
    release.set()
    executions = await waits
    assert counting.calls["get_executions"] == 0, counting.calls
    records = await inner.get_executions([h.execution_id for h in handles])
    serializer = executor.options.serializer
    assert executions == [DurableTaskExecution.from_record(r, serializer) for r in records]
    assert [e.output for e in executions] == [{"n": n} for n in range(50)]


async def test_handles_awaited_one_by_one_after_their_roots_completed_here_read_nothing(
    timed_storage: DurableStorage,  # before make_executor: closed after the executors stop
    make_executor: Callable[..., DurableExecutor],
) -> None:
    """On a storage that stores the executor's times, a root's record is kept when it
    completes even though nobody waits for it then: handles awaited in turn afterwards (the
    commonest way to wait) are answered from memory, with what a read of the storage gives."""
    counting = CountingCallerClock(timed_storage)
    executor = make_executor(counting)
    task = executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, i: {"n": i})
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(300)])
    await executor.wait_until_finished(handles, timeout=20)  # no record wanted meanwhile
    counting.calls.clear()
    executions = [await h.wait_and_get_execution(timeout=0) for h in handles]
    assert counting.reads() == 0, counting.calls
    records = await timed_storage.get_executions([h.execution_id for h in handles])
    serializer = executor.options.serializer
    assert executions == [DurableTaskExecution.from_record(r, serializer) for r in records]


async def test_waits_read_back_roots_whose_times_the_storage_stamps(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    """A storage stamping its own times without telling them (a wrapper without the
    abilities): what a wait returns is read back, the same as a read."""
    counting = Counting(storage)  # no ability: records are read, never computed
    executor = make_executor(counting)
    task = executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, i: i)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(20)])
    executions = await asyncio.gather(*(h.wait_and_get_execution(timeout=20) for h in handles))
    assert counting.calls["get_executions"] >= 1
    records = await storage.get_executions([h.execution_id for h in handles])
    serializer = executor.options.serializer
    assert executions == [DurableTaskExecution.from_record(r, serializer) for r in records]


class SkewedClock(Counting):
    """A storage on a clock ``skew_ms`` ahead of the executor's, telling its stamps, as
    PostgreSQL's default clock does (the server's): every time is stored ``skew_ms`` later,
    the times the executor computed included. It wraps a storage that stores the callers'
    times."""

    def __init__(self, inner: DurableStorage, skew_ms: int) -> None:
        super().__init__(inner)
        self.skew_ms = skew_ms

    def _moved(self, new: NewExecution) -> NewExecution:
        return dataclasses.replace(new, start_at_ms=new.start_at_ms + self.skew_ms)

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if "now_ms" in kwargs:
            kwargs["now_ms"] += self.skew_ms
        return await super().forward(name, *args, **kwargs)

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        return (await self.insert_executions_stamped(executions, now_ms))[0]

    async def insert_executions_stamped(
        self, executions: Sequence[NewExecution], now_ms: int
    ) -> tuple[list[str], int | None]:
        moved = [self._moved(n) for n in executions]
        ids: list[str] = await self.forward("insert_executions", moved, now_ms + self.skew_ms)
        return ids, now_ms + self.skew_ms

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        return [at is not None for at in await self.record_outcomes_stamped(outcomes, now_ms)]

    async def record_outcomes_stamped(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[int | None]:
        moved = [
            dataclasses.replace(
                o,
                start_at_ms=None if o.start_at_ms is None else o.start_at_ms + self.skew_ms,
                children=tuple(self._moved(c) for c in o.children),
                successor=None if o.successor is None else self._moved(o.successor),
            )
            for o in outcomes
        ]
        at = now_ms + self.skew_ms
        applied: list[bool] = await self.forward("record_outcomes", moved, at)
        return [at if ok else None for ok in applied]


@pytest.mark.parametrize("skew_ms", [3_600_000, -3_600_000], ids=["ahead", "behind"])
@pytest.mark.parametrize("claimed", [False, True], ids=["dispatched", "claimed"])
async def test_records_computed_from_stamps_equal_what_a_storage_on_another_clock_holds(
    timed_storage: DurableStorage,  # before make_executor: closed after the executors stop
    make_executor: Callable[..., DurableExecutor],
    claimed: bool,
    skew_ms: int,
) -> None:
    """A storage whose clock is an hour ahead of the executor's, or behind: the records the
    executor computes for the roots it runs (a claim's, or its own from the insert's stamp,
    its start time moved with it) are the ones the storage holds, field for field, without a
    read, and each task ran once."""
    skewed = SkewedClock(timed_storage, skew_ms)
    executor = make_executor(skewed)
    runs = collections.Counter[int]()

    def echo(ctx: TaskContext, n: int) -> int:
        runs[n] += 1
        return n

    task = executor.task(id="echo", timeout_ms=10_000, run=echo)
    inputs = [(task, n) for n in range(30)]
    if claimed:
        handles = await executor.enqueue_tasks(inputs)
        await executor.start()
    else:
        await executor.start()
        handles = await executor.enqueue_tasks(inputs)
    await executor.wait_until_finished(handles, timeout=20)
    skewed.calls.clear()
    executions = [await h.wait_and_get_execution(timeout=0) for h in handles]
    assert skewed.calls["get_executions"] == 0, skewed.calls
    records = await timed_storage.get_executions([h.execution_id for h in handles])
    assert all(abs(r.created_at_ms - skew_ms - executor._clock()) < 600_000 for r in records)
    serializer = executor.options.serializer
    assert executions == [DurableTaskExecution.from_record(r, serializer) for r in records]
    assert runs == {n: 1 for n in range(30)}


async def test_waits_one_by_one_on_executions_finished_here_read_them_together(
    counted_executor: DurableExecutor, counting: Counting
) -> None:
    executor = counted_executor
    task = executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, i: i)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(300)])
    await executor.wait_until_finished(handles, timeout=20)  # finished, none read yet
    counting.calls.clear()
    outputs = [(await h.wait_and_get_execution(timeout=0)).output for h in handles]
    assert outputs == list(range(300))
    assert counting.calls["find_finished"] == 0
    assert counting.calls["get_executions"] == 1  # the first brought the others along


async def test_records_from_memory_equal_what_the_storage_holds(
    counted_executor: DurableExecutor, counting: Counting
) -> None:
    executor = counted_executor
    started = asyncio.Event()

    async def sleeper(ctx: TaskContext, input: None) -> None:
        started.set()
        await asyncio.sleep(30)

    def fail(ctx: TaskContext, input: None) -> None:
        raise DurableExecutionError("fatal", is_retryable=False)

    async def slow(ctx: TaskContext, input: None) -> None:
        await asyncio.sleep(30)

    ok: DurableTask[int, dict[str, int]] = executor.task(
        id="ok", timeout_ms=5_000, run=lambda ctx, i: {"n": i}
    )
    bad = executor.task(id="bad", timeout_ms=5_000, run=fail)
    slow_task = executor.task(id="slow", timeout_ms=60_000, run=slow)
    sleeper_task = executor.task(id="sleeper", timeout_ms=60_000, run=sleeper)
    tree = executor.parent_task(
        id="tree",
        timeout_ms=5_000,
        run_parent=lambda ctx, i: {"output": i, "children": [ChildTask(ok, 1), ChildTask(ok, 2)]},
        on_run_and_children_complete={
            "id": "tree_done",
            "timeout_ms": 5_000,
            "run": lambda ctx, v: len(v.children_outputs),
        },
    )
    broken = executor.parent_task(
        id="broken",
        timeout_ms=5_000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [ChildTask(slow_task), ChildTask(bad)],
        },
    )
    await executor.start()
    handles: list[DurableTaskHandle[Any]] = [
        await executor.enqueue_task(ok, 7),
        await executor.enqueue_task(bad),
        await executor.enqueue_task(tree, 0),
        await executor.enqueue_task(broken),
        await executor.enqueue_task(ok, 8, delay_ms=60_000),
        await executor.enqueue_task(sleeper_task),
    ]
    await handles[4].cancel()  # cancelled while ready
    await asyncio.wait_for(started.wait(), 10)
    await handles[5].cancel()  # cancelled while running: its stop request pending a while
    statuses = [(await h.wait_and_get_execution(timeout=20)).status for h in handles]
    assert statuses == [S.COMPLETED, S.FAILED, S.COMPLETED, S.CHILDREN_FAILED, *[S.CANCELLED] * 2]
    for handle in handles:  # read until closed: then final, and kept
        await wait_until(functools.partial(_closed, handle), message=f"{handle} closed")
    counting.calls.clear()
    kept_ids = []
    for handle in handles:
        kept = executor._engine.finished.get(handle.execution_id)
        if kept is None:  # a stop request may stay pending on a run cancelled here
            continue
        kept_ids.append(handle.execution_id)
        assert kept == await stored(counting.inner, handle)
        execution = await handle.get_execution()
        assert execution == DurableTaskExecution.from_record(kept, executor.options.serializer)
    # Only completed executions are kept: a retry may reopen the others (executor/finished.py).
    assert kept_ids == [handles[0].execution_id, handles[2].execution_id]
    assert counting.calls["get_executions"] == 0  # each from memory


async def _closed(handle: DurableTaskHandle[Any]) -> bool:
    return (await handle.get_execution()).is_closed


async def test_unfinished_executions_are_read_fresh_each_time(
    counted_executor: DurableExecutor, counting: Counting
) -> None:
    executor = counted_executor
    release = asyncio.Event()

    async def gated(ctx: TaskContext, input: None) -> str:
        await release.wait()
        return "done"

    task = executor.task(id="gated", timeout_ms=10_000, run=gated)
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(
        lambda: handle.execution_id in executor._engine.running, message="it runs here"
    )
    counting.calls.clear()
    assert (await handle.get_execution()).status is S.RUNNING
    assert (await executor.get_execution(handle.execution_id)).status is S.RUNNING
    assert counting.calls["get_executions"] == 2
    release.set()
    assert (await handle.wait_and_get_execution(timeout=10)).output == "done"


async def test_reads_checking_workers_work_before_and_once_final(executor: DurableExecutor) -> None:
    release = asyncio.Event()

    async def gated(ctx: TaskContext, input: None) -> str:
        await release.wait()
        return "done"

    task = executor.task(id="gated", timeout_ms=10_000, run=gated)
    await executor.start()
    handle = await executor.enqueue_task(task)
    running = await handle.get_execution(check_workers=True)
    assert running.unserved_task_ids == ()
    release.set()
    await handle.wait_and_get_execution(timeout=10)
    assert executor._engine.finished.get(handle.execution_id) is not None
    finished = await handle.get_execution(check_workers=True)
    assert (finished.status, finished.output, finished.unserved_task_ids) == (
        S.COMPLETED,
        "done",
        (),
    )


async def test_an_execution_finished_elsewhere_is_found_then_kept(
    make_executor: Callable[..., DurableExecutor], storage_factory: Callable[..., Any]
) -> None:
    runner = make_executor(await storage_factory())
    waiter_storage = Counting(await storage_factory())
    waiter = make_executor(waiter_storage)  # never started: it only enqueues and waits
    for executor in (runner, waiter):
        task = executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, i: i)
    await runner.start()
    handle = await waiter.enqueue_task(task, "far")
    assert (await handle.wait_and_get_execution(timeout=20)).output == "far"
    assert waiter_storage.calls["find_finished"] >= 1  # found by a check, not told
    waiter_storage.calls.clear()
    assert (await handle.wait_and_get_execution(timeout=0)).output == "far"
    assert waiter_storage.reads() == 0


async def test_a_failed_read_fails_every_wait_that_shared_it(
    counted_executor: DurableExecutor, counting: Counting
) -> None:
    executor = counted_executor
    task = executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, i: i)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(20)])
    await executor.wait_until_finished(handles, timeout=20)
    counting.failing = True
    results = await asyncio.gather(
        *(h.wait_and_get_execution(timeout=10) for h in handles), return_exceptions=True
    )
    assert all(isinstance(r, DurableStorageError) for r in results), results
    assert counting.calls["get_executions"] == 1
    counting.failing = False
    executions = await asyncio.gather(*(h.wait_and_get_execution(timeout=10) for h in handles))
    assert [e.output for e in executions] == list(range(20))
