"""Cancel at each point of an execution's life in this process: the wait returns, the slot is
freed, and the status is ``cancelled`` (the run never records over it).

The points: a child reserved for direct dispatch while its parent's outcome is written; a root
inserted but not yet dispatched; dispatched but not yet started; running; finishing (its
outcome being written). Each runs on every backend, with one slot, so that a leaked slot shows
as the next execution never running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext
from durable_execution.handle import DurableTaskHandle
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionOutcome, NewExecution
from durable_execution.testing import DelegatingStorage

from .helpers import wait_until

S = DurableTaskExecutionStatus

Hook = Callable[[], Awaitable[None]]


class HookedStorage(DelegatingStorage):
    """Delegates to a real storage; runs a hook before a chosen outcome is written, or after
    a chosen insert committed (before the executor hears back)."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.before_outcome: Callable[[ExecutionOutcome], Hook | None] = lambda o: None
        self.after_insert: Callable[[Sequence[NewExecution]], Hook | None] = lambda n: None

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        for outcome in outcomes:
            hook = self.before_outcome(outcome)
            if hook is not None:
                await hook()
        return await self.inner.record_outcomes(outcomes, now_ms)

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        ids = await self.inner.insert_executions(executions, now_ms)
        hook = self.after_insert(executions)
        if hook is not None:
            await hook()
        return ids


def one_slot_executor(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> tuple[DurableExecutor, HookedStorage]:
    hooked = HookedStorage(storage)
    executor = make_executor(hooked, max_concurrent_task_executions=1)
    return executor, hooked


async def assert_cancelled_and_slot_free(
    executor: DurableExecutor, handle: DurableTaskHandle[Any], probe: Any
) -> None:
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.CANCELLED
    assert execution.output is None
    # One slot: the next execution runs only if the cancelled one gave its slot back.
    follow_up = await executor.enqueue_task(probe, "after")
    assert (await follow_up.wait_and_get_execution(timeout=10)).output == "after"
    await wait_until(lambda: executor._engine.free_slots() == 1, message="the slot to be free")


async def echo(ctx: TaskContext, input: Any) -> Any:
    return input


async def test_cancel_after_dispatch_before_the_run_starts(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage, backend: str
) -> None:
    runs: list[str] = []

    async def sleeps(ctx: TaskContext, input: None) -> None:
        runs.append(ctx.execution_id)
        await asyncio.sleep(0.1)

    executor, _ = one_slot_executor(make_executor, storage)
    task = executor.task(id="sleeps", timeout_ms=1000, run=sleeps)
    probe = executor.task(id="probe", timeout_ms=1000, run=echo)
    await executor.start()
    handle = await executor.enqueue_task(task, None)
    await handle.cancel()  # no await in between: its asyncio task has not had a step yet
    assert (await handle.get_execution()).status is S.CANCELLED
    await assert_cancelled_and_slot_free(executor, handle, probe)
    assert len(runs) <= 1
    if backend == "memory":  # its cancel never yields: the run is stopped before it began
        assert runs == []


async def test_cancel_after_insert_before_dispatch(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, hooked = one_slot_executor(make_executor, storage)
    task = executor.task(id="slow", timeout_ms=5000, run=lambda ctx, i: asyncio.sleep(0.05))
    probe = executor.task(id="probe", timeout_ms=1000, run=echo)
    cancelled: list[str] = []

    def cancel_it(executions: Sequence[NewExecution]) -> Hook | None:
        if executions[0].task_id != "slow" or cancelled:
            return None

        async def hook() -> None:  # as if another process cancelled it at this moment
            cancelled.append(executions[0].execution_id)
            await DurableTaskHandle(executor, "slow", executions[0].execution_id).cancel()

        return hook

    hooked.after_insert = cancel_it
    await executor.start()
    handle = await executor.enqueue_task(task, None)
    assert cancelled == [handle.execution_id]
    await assert_cancelled_and_slot_free(executor, handle, probe)


async def test_cancel_while_running(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def long(ctx: TaskContext, input: None) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()
        return "finished"

    executor, _ = one_slot_executor(make_executor, storage)
    task = executor.task(id="long", timeout_ms=60_000, run=long)
    probe = executor.task(id="probe", timeout_ms=1000, run=echo)
    await executor.start()
    handle = await executor.enqueue_task(task, None)
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel()
    await asyncio.wait_for(stopped.wait(), 10)
    await assert_cancelled_and_slot_free(executor, handle, probe)


async def test_cancel_while_its_outcome_is_written(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, hooked = one_slot_executor(make_executor, storage)
    task = executor.task(id="quick", timeout_ms=5000, run=lambda ctx, i: "done")
    probe = executor.task(id="probe", timeout_ms=1000, run=echo)
    cancelled: list[str] = []

    def cancel_first(outcome: ExecutionOutcome) -> Hook | None:
        if cancelled or outcome.status is not S.COMPLETED or outcome.output != '"done"':
            return None

        async def hook() -> None:
            cancelled.append(outcome.execution_id)
            await DurableTaskHandle(executor, "quick", outcome.execution_id).cancel()

        return hook

    hooked.before_outcome = cancel_first
    await executor.start()
    handle = await executor.enqueue_task(task, None)
    await assert_cancelled_and_slot_free(executor, handle, probe)
    assert cancelled == [handle.execution_id]  # the completed outcome arrived too late


async def test_cancel_a_parent_while_its_children_are_reserved(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, hooked = one_slot_executor(make_executor, storage)
    child_runs: list[str] = []
    child = executor.task(id="child", timeout_ms=5000, run=lambda ctx, i: child_runs.append(i))
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {"output": i, "children": [{"task": child, "input": "c"}]},
    )
    probe = executor.task(id="probe", timeout_ms=1000, run=echo)
    cancelled: list[str] = []

    def cancel_parent(outcome: ExecutionOutcome) -> Hook | None:
        if cancelled or outcome.status is not S.WAITING_FOR_CHILDREN:
            return None
        # Its child is inserted claimed by this executor only if this outcome applies.
        assert executor._engine.free_slots() <= 0

        async def hook() -> None:
            cancelled.append(outcome.execution_id)
            await DurableTaskHandle(executor, "parent", outcome.execution_id).cancel()

        return hook

    hooked.before_outcome = cancel_parent
    await executor.start()
    handle = await executor.enqueue_task(parent, "p")
    await assert_cancelled_and_slot_free(executor, handle, probe)
    execution = await handle.get_execution()
    assert execution.child_execution_ids == ()  # the outcome inserting the child was refused
    assert child_runs == []
