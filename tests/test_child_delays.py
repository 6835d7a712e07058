"""Durable timers: ``ChildTask(task, input, delay_ms=...)`` on every backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableStorage,
    DurableTask,
    DurableTaskExecutionStatus,
)
from durable_execution.checks import MAX_DURATION_MS
from durable_execution.executor.outcomes import InvalidParentResultError, parse_parent_result
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.records import ExecutionRecord

from .helpers import wait_until

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]


def echo_task(executor: DurableExecutor) -> DurableTask[int, int]:
    return executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, i: i)


async def stored_children(storage: DurableStorage, parent_id: str, n: int) -> list[ExecutionRecord]:
    """The parent's ``n`` children as stored, once it created them."""

    async def children() -> list[ExecutionRecord] | None:
        (parent,) = await storage.get_executions([parent_id])
        if len(parent.child_execution_ids) < n:
            return None
        return await storage.get_executions(parent.child_execution_ids)

    found: list[ExecutionRecord] | None = await wait_until(children, message="the children")
    assert found is not None
    return found


def assert_starts_after(record: ExecutionRecord, delay_ms: int) -> None:
    # The delay counts from the parent's run's end, a little before the children's insert.
    waited = record.start_at_ms - record.created_at_ms
    assert delay_ms - 200 <= waited <= delay_ms, (waited, delay_ms)


async def test_a_delayed_child_is_stored_ready_with_its_start_time(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    echo = echo_task(executor)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5_000,
        run_parent=lambda ctx: {
            "output": None,
            "children": [ChildTask(echo, 1), ChildTask(echo, 2, delay_ms=3_600_000)],
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    now, later = await stored_children(storage, handle.execution_id, 2)
    assert_starts_after(now, 0)
    assert_starts_after(later, 3_600_000)

    async def undelayed_completed() -> ExecutionRecord | None:
        (record,) = await storage.get_executions([now.execution_id])
        return record if record.status is S.COMPLETED else None

    done: ExecutionRecord | None = await wait_until(undelayed_completed, message="the child")
    assert done is not None
    (later,) = await storage.get_executions([later.execution_id])
    assert (later.status, later.started_at_ms) == (S.READY, None)
    (record,) = await storage.get_executions([handle.execution_id])
    assert record.status is S.WAITING_FOR_CHILDREN


async def test_delayed_children_run_after_their_start_and_the_parent_completes(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    echo = echo_task(executor)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5_000,
        run_parent=lambda ctx: {
            "output": "timers",
            "children": [
                ChildTask(echo, 1, delay_ms=300),
                {"task": echo, "input": 2, "delay_ms": 150},
                ChildTask(echo, 3),
            ],
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.status is S.COMPLETED
    assert execution.output is not None
    assert [c["output"] for c in execution.output["children_outputs"]] == [1, 2, 3]
    children = await storage.get_executions(execution.child_execution_ids)
    for child, delay in zip(children, [300, 150, 0], strict=True):
        assert_starts_after(child, delay)
        assert child.started_at_ms is not None
        assert child.started_at_ms >= child.start_at_ms


async def test_a_delayed_child_survives_its_executor(
    make_executor: MakeExecutor,
    storage: DurableStorage,
    storage_factory: Callable[[], Awaitable[DurableStorage]],
) -> None:
    def define(executor: DurableExecutor) -> DurableTask[None, Any]:
        echo = echo_task(executor)
        return executor.parent_task(
            id="parent",
            timeout_ms=5_000,
            run_parent=lambda ctx: {"output": None, "children": [ChildTask(echo, 7, delay_ms=400)]},
        )

    first = make_executor()
    parent = define(first)
    await first.start()
    handle = await first.enqueue_task(parent)
    (child,) = await stored_children(storage, handle.execution_id, 1)
    await first.shutdown()  # the timer lives in storage, not in this executor

    second = make_executor(await storage_factory())
    again = define(second)
    await second.start()
    execution = await (
        await second.get_task_handle(again, handle.execution_id)
    ).wait_and_get_execution(timeout=20)
    assert execution.status is S.COMPLETED
    assert execution.output is not None
    assert execution.output["children_outputs"][0]["output"] == 7
    (child,) = await storage.get_executions([child.execution_id])
    assert child.started_at_ms is not None
    assert child.started_at_ms >= child.start_at_ms


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [-1, MAX_DURATION_MS + 1, 1.5, True, "10", None])
def test_child_task_refuses_an_invalid_delay(delay: Any) -> None:
    echo = echo_task(DurableExecutor(InMemoryStorage()))
    with pytest.raises(ValueError, match=r"Invalid option delay_ms=.* for a child of task 'echo'"):
        ChildTask(echo, 1, delay_ms=delay)


def test_child_task_accepts_the_bounds() -> None:
    echo = echo_task(DurableExecutor(InMemoryStorage()))
    assert ChildTask(echo, 1).delay_ms == 0
    assert ChildTask(echo, 1, delay_ms=MAX_DURATION_MS).delay_ms == MAX_DURATION_MS


def test_a_child_mapping_with_an_invalid_delay_is_an_invalid_parent_result() -> None:
    echo = echo_task(DurableExecutor(InMemoryStorage()))
    result = {"output": None, "children": [{"task": echo, "input": 1, "delay_ms": -5}]}
    with pytest.raises(InvalidParentResultError, match="child 0: Invalid option delay_ms=-5"):
        parse_parent_result("parent", result, 10)
    result = {"output": None, "children": [{"task": echo, "input": 1, "delay_ms": 5}]}
    _, (child,) = parse_parent_result("parent", result, 10)
    assert child.delay_ms == 5


async def test_a_parent_returning_an_invalid_delay_fails_without_retrying(
    executor: DurableExecutor,
) -> None:
    echo = echo_task(executor)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5_000,
        max_retry_attempts=3,
        run_parent=lambda ctx: {"output": None, "children": [{"task": echo, "delay_ms": "soon"}]},
    )
    await executor.start()
    execution = await (await executor.enqueue_task(parent)).wait_and_get_execution(timeout=20)
    assert (execution.status, execution.retry_attempts) == (S.FAILED, 0)
    assert execution.error is not None
    assert "Invalid option delay_ms='soon'" in execution.error.message
