"""Looping tasks on every backend: iterations, their sleep in storage, resumption, O(1) cost."""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from durable_execution import (
    DurableExecutor,
    DurableStorage,
    DurableTask,
    DurableTaskExecutionStatus,
    IterationResult,
    TaskContext,
)
from durable_execution.checks import MAX_ITERATIONS
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.records import ExecutionRecord
from durable_execution.testing import DelegatingStorage

from .helpers import wait_until

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]


def counting_loop(
    executor: DurableExecutor,
    calls: list[str],
    *,
    done_at: int,
    max_iterations: int = 10,
    sleep_ms: int = 0,
) -> DurableTask[str, Any]:
    """A loop whose iteration ``done_at`` (1-based) is done, counting the iterations run."""

    def iterate(ctx: TaskContext, name: str) -> IterationResult[int]:
        calls.append(name)
        return {"is_done": len(calls) >= done_at, "output": len(calls)}

    poll = executor.task(id="poll", timeout_ms=5_000, run=iterate)
    return executor.looping_task(
        id="loop",
        iteration_task=poll,
        max_iterations=max_iterations,
        sleep_ms_between_iterations=sleep_ms,
    )


async def children_of(storage: DurableStorage, execution_id: str) -> list[ExecutionRecord]:
    (record,) = await storage.get_executions([execution_id])
    return await storage.get_executions(record.child_execution_ids)


async def test_a_loop_runs_until_an_iteration_is_done(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    calls: list[str] = []
    loop = counting_loop(executor, calls, done_at=3)
    await executor.start()
    handle = await executor.enqueue_task(loop, "job")
    execution = await handle.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, {"is_success": True, "output": 3})
    assert calls == ["job", "job", "job"]
    children = await children_of(storage, handle.execution_id)
    assert [c.index_in_parent for c in children] == [0, 1, 2]
    assert {(c.task_id, c.parent_execution_id, c.root_execution_id) for c in children} == {
        ("loop_iteration", handle.execution_id, handle.execution_id)
    }
    assert {c.input for c in children} == {children[0].input}  # the input never grows


async def test_a_loop_out_of_iterations_is_not_a_success(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    calls: list[str] = []
    loop = counting_loop(executor, calls, done_at=99, max_iterations=4)
    await executor.start()
    handle = await executor.enqueue_task(loop, "job")
    execution = await handle.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, {"is_success": False})
    assert len(calls) == 4
    assert len(await children_of(storage, handle.execution_id)) == 4


class CountingAdvances(DelegatingStorage):
    """Counts the parents claimed to move past their children, by task id."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.advanced: collections.Counter[str] = collections.Counter()

    async def claim_parents_to_advance(self, **kwargs: Any) -> Any:
        parents = await self.inner.claim_parents_to_advance(**kwargs)
        self.advanced.update(p.record.task_id for p in parents)
        return parents


async def test_iterations_sleep_in_storage_and_hand_over_without_advancing_the_loop(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    counting = CountingAdvances(storage)
    executor = make_executor(counting)
    calls: list[str] = []
    loop = counting_loop(executor, calls, done_at=4, sleep_ms=250)
    await executor.start()
    handle = await executor.enqueue_task(loop, "job")
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.output == {"is_success": True, "output": 4}
    children = await children_of(storage, handle.execution_id)
    waits = [c.start_at_ms - c.created_at_ms for c in children]
    # The first iteration does not sleep (its start time is computed when the loop's outcome
    # is built, its creation stamped when written: a millisecond or so apart, either way).
    assert abs(waits[0]) < 50, waits
    assert all(50 <= w <= 250 for w in waits[1:]), waits
    for child in children:
        assert child.started_at_ms is not None
        assert child.started_at_ms >= child.start_at_ms
    # Each iteration, claimed after its sleep by the run loop, handed over to the next one:
    # the loop moved past its iterations once, at the end, not once per iteration.
    assert counting.advanced["loop"] == 1


async def test_a_loop_resumes_at_its_current_iteration_on_another_executor(
    make_executor: MakeExecutor,
    storage: DurableStorage,
    storage_factory: Callable[[], Awaitable[DurableStorage]],
) -> None:
    first_calls: list[str] = []
    first = make_executor()
    loop = counting_loop(first, first_calls, done_at=99, max_iterations=3, sleep_ms=400)
    await first.start()
    handle = await first.enqueue_task(loop, "job")

    async def two_iterations() -> list[ExecutionRecord] | None:
        children = await children_of(storage, handle.execution_id)
        return children if len(children) == 2 else None

    found: list[ExecutionRecord] | None = await wait_until(two_iterations, message="iteration 2")
    assert found is not None
    await first.shutdown()  # iteration 1 waits in storage for its start time
    assert first_calls == ["job"]

    later_calls: list[str] = []
    second = make_executor(await storage_factory())
    again = counting_loop(second, later_calls, done_at=99, max_iterations=3, sleep_ms=400)
    await second.start()
    later = await second.get_task_handle(again, handle.execution_id)
    execution = await later.wait_and_get_execution(timeout=20)
    assert execution.output == {"is_success": False}
    assert later_calls == ["job", "job"]  # iterations 1 and 2; iteration 0 is not run again
    assert len(await children_of(storage, handle.execution_id)) == 3


async def test_ten_thousand_iterations_cost_the_same_each(
    executor: DurableExecutor, storage: DurableStorage, backend: str
) -> None:
    # 10,000 everywhere but PostgreSQL, whose 2.4 ms a write would add 24 s to the suite.
    n = 3_000 if backend == "postgres" else 10_000
    times: list[float] = []

    def iterate(ctx: TaskContext) -> IterationResult[int]:
        times.append(time.monotonic())
        return {"is_done": len(times) >= n, "output": len(times)}

    poll = executor.task(id="poll", timeout_ms=5_000, run=iterate)
    loop = executor.looping_task(id="loop", iteration_task=poll, max_iterations=n)
    await executor.start()
    handle = await executor.enqueue_task(loop)
    execution = await handle.wait_and_get_execution(timeout=300)
    assert execution.output == {"is_success": True, "output": n}
    children = await children_of(storage, handle.execution_id)
    assert len(children) == n
    assert {c.parent_execution_id for c in children} == {handle.execution_id}  # no deeper tree
    assert {c.input for c in children} == {"null"}  # no growing input
    # Quadratic work (an advance reading every iteration so far) would make the last tenth
    # of the iterations several times slower than the first.
    tenth = n // 10
    first, last = times[tenth] - times[0], times[-1] - times[-1 - tenth]
    assert last < 3 * first + 0.5, (first, last)


async def test_an_iteration_result_of_the_wrong_shape_fails_the_loop(
    executor: DurableExecutor,
) -> None:
    poll = executor.task(id="poll", timeout_ms=5_000, run=lambda ctx: "not a result")
    loop = executor.looping_task(id="loop", iteration_task=poll, max_iterations=5)
    await executor.start()
    execution = await (await executor.enqueue_task(loop)).wait_and_get_execution(timeout=20)
    assert execution.status is S.FAILED
    assert execution.error is not None
    assert "Iteration 0 of looping task loop returned 'not a result'" in execution.error.message


async def test_an_iteration_that_fails_fails_the_loop(executor: DurableExecutor) -> None:
    def iterate(ctx: TaskContext) -> IterationResult[None]:
        raise ValueError("upstream gone")

    poll = executor.task(id="poll", timeout_ms=5_000, run=iterate)
    loop = executor.looping_task(id="loop", iteration_task=poll, max_iterations=5)
    await executor.start()
    execution = await (await executor.enqueue_task(loop)).wait_and_get_execution(timeout=20)
    assert execution.status is S.CHILDREN_FAILED
    assert execution.error is not None
    assert "upstream gone" in execution.error.message


# -- definition ------------------------------------------------------------------------------


def poll_task(executor: DurableExecutor) -> DurableTask[Any, Any]:
    return executor.task(id="poll", timeout_ms=100, run=lambda ctx: {"is_done": True})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_iterations", 0),
        ("max_iterations", MAX_ITERATIONS + 1),
        ("max_iterations", 2.0),
        ("sleep_ms_between_iterations", -1),
        ("sleep_ms_between_iterations", True),
    ],
)
def test_looping_task_options_are_checked(option: str, value: Any) -> None:
    executor = DurableExecutor(InMemoryStorage())
    options: dict[str, Any] = {"max_iterations": 3, option: value}
    with pytest.raises(ValueError, match=f"Invalid option {option}=.* for looping task 'loop'"):
        executor.looping_task(id="loop", iteration_task=poll_task(executor), **options)


def test_the_iteration_task_must_be_a_plain_task() -> None:
    executor = DurableExecutor(InMemoryStorage())
    parent = executor.parent_task(id="p", timeout_ms=100, run_parent=lambda ctx: {"output": 1})
    with pytest.raises(ValueError, match="iteration_task must be a task defined with task"):
        executor.looping_task(id="loop", iteration_task=parent, max_iterations=3)


def test_the_iteration_copy_keeps_the_options_and_takes_a_derived_id() -> None:
    executor = DurableExecutor(InMemoryStorage())
    poll = executor.task(id="poll", timeout_ms=123, max_retry_attempts=2, run=lambda ctx: None)
    loop = executor.looping_task(id="loop", iteration_task=poll, max_iterations=3)
    assert loop.loop is not None
    iteration = loop.loop.iteration
    assert (iteration.id, iteration.timeout_ms, iteration.options.max_retry_attempts) == (
        "loop_iteration",
        123,
        2,
    )
    with pytest.raises(ValueError, match="already defined"):
        executor.task(id="loop_iteration", timeout_ms=100, run=lambda ctx: None)
