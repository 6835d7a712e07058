"""Parent tasks under both children policies, on every backend: a child that does not
complete fails a ``fail_fast`` parent at once, while an ``all_settled`` parent waits for every
child and hands each one's status, output and error to its completion task (or its output)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable_execution import (
    ChildrenPolicy,
    ChildTask,
    DurableExecutionError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    OnRunAndChildrenCompleteInput,
    TaskContext,
)

from .helpers import wait_until

S = DurableTaskExecutionStatus


def _fail(ctx: TaskContext, reason: str) -> None:
    raise DurableExecutionError(reason, is_retryable=False)


def _summary(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[Any, Any]) -> Any:
    return [
        {
            "status": c.status.value,
            "output": c.output,
            "error": None if c.error is None else c.error.message,
            "task_id": c.task_id,
            "same_id": c.execution_id == o.execution_id,
        }
        for c, o in zip(value.children, value.children_outputs, strict=True)
    ]


async def _child_ids(executor: DurableExecutor, parent_id: str, count: int) -> tuple[str, ...]:
    async def created() -> tuple[str, ...] | None:
        ids = (await executor.get_execution(parent_id)).child_execution_ids
        return ids if len(ids) >= count else None

    ids = await wait_until(created, message="the parent's children")
    return ids[:count]


@pytest.mark.parametrize("policy", ["fail_fast", "all_settled"])
async def test_a_failing_child_and_a_completing_one(
    executor: DurableExecutor, policy: ChildrenPolicy
) -> None:
    ok = executor.task(id="ok", timeout_ms=1000, run=lambda ctx, i: i * 2)
    bad = executor.task(id="bad", timeout_ms=1000, run=_fail)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": i,
            "children": [ChildTask(ok, 21), ChildTask(bad, "no")],
        },
        on_run_and_children_complete={"id": "parent_done", "timeout_ms": 1000, "run": _summary},
        children_policy=policy,
    )
    await executor.start()
    execution = await (await executor.enqueue_task(parent, 1)).wait_and_get_execution(timeout=20)
    if policy == "fail_fast":
        assert execution.status is S.CHILDREN_FAILED
        assert execution.error is not None
        assert "ended failed: no" in execution.error.message
        return
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == [
        {"status": "completed", "output": 42, "error": None, "task_id": "ok", "same_id": True},
        {"status": "failed", "output": None, "error": "no", "task_id": "bad", "same_id": True},
    ]


async def test_all_settled_waits_for_every_child(executor: DurableExecutor) -> None:
    """The failed child is closed while its sibling still runs: the parent keeps waiting,
    and its completion task runs once the sibling finished."""
    gate = asyncio.Event()
    completions: list[int] = []

    async def slow(ctx: TaskContext, i: int) -> int:
        await gate.wait()
        return i

    def done(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[Any, Any]) -> Any:
        completions.append(1)
        return [c.status.value for c in value.children]

    slow_task = executor.task(id="slow", timeout_ms=10_000, run=slow)
    bad = executor.task(id="bad", timeout_ms=1000, run=_fail)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1000,
        run_parent=lambda ctx: {
            "output": None,
            "children": [ChildTask(bad, "x"), ChildTask(slow_task, 3)],
        },
        on_run_and_children_complete={"id": "parent_done", "timeout_ms": 1000, "run": done},
        children_policy="all_settled",
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    bad_id, slow_id = await _child_ids(executor, handle.execution_id, 2)

    async def bad_closed() -> bool:
        return (await executor.get_execution(bad_id)).is_closed

    await wait_until(bad_closed, message="the failed child to be closed")
    assert not (await executor.get_execution(slow_id)).is_finished
    waiting = await executor.get_execution(handle.execution_id)
    assert waiting.status is S.WAITING_FOR_CHILDREN
    assert completions == []
    gate.set()
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == ["failed", "completed"]
    assert completions == [1]


async def test_timed_out_and_cancelled_children_without_completion(
    executor: DurableExecutor,
) -> None:
    """Without a completion task, an all_settled parent completes with the settled list."""
    never = asyncio.Event()

    async def hang(ctx: TaskContext) -> None:
        await never.wait()

    hanging = executor.task(id="hang", timeout_ms=50, run=hang)
    waiting = executor.task(id="wait", timeout_ms=60_000, run=hang)
    ok = executor.task(id="ok", timeout_ms=1000, run=lambda ctx: "fine")
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1000,
        run_parent=lambda ctx: {
            "output": "p",
            "children": [ChildTask(hanging), ChildTask(waiting), ChildTask(ok)],
        },
        children_policy="all_settled",
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    _, waiting_id, _ = await _child_ids(executor, handle.execution_id, 3)

    async def started() -> bool:
        return (await executor.get_execution(waiting_id)).status is S.RUNNING

    await wait_until(started, message="the waiting child to run")
    await (await executor.get_task_handle(waiting, waiting_id)).cancel()
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.status is S.COMPLETED, execution.error
    output = execution.output
    assert output["output"] == "p"
    statuses = [(c["task_id"], c["status"]) for c in output["children"]]
    assert statuses == [("hang", "timed_out"), ("wait", "cancelled"), ("ok", "completed")]
    errors = [c["error"] and c["error"]["error_type"] for c in output["children"]]
    assert errors == ["timed_out", "cancelled", None]
    assert [c["output"] for c in output["children_outputs"]] == [None, None, "fine"]


@pytest.mark.parametrize("outer", ["fail_fast", "all_settled"])
async def test_nested_parents(executor: DurableExecutor, outer: ChildrenPolicy) -> None:
    """A fail_fast inner parent fails on its failing child; an all_settled outer parent
    sees it as a child that ended ``children_failed``, a fail_fast one fails. An all_settled
    inner parent completes whatever its children did."""
    bad = executor.task(id="bad", timeout_ms=1000, run=_fail)
    ok = executor.task(id="ok", timeout_ms=1000, run=lambda ctx: 1)
    children = lambda ctx: {"output": None, "children": [ChildTask(bad, "deep"), ChildTask(ok)]}  # noqa: E731
    strict = executor.parent_task(id="strict", timeout_ms=1000, run_parent=children)
    lenient = executor.parent_task(
        id="lenient", timeout_ms=1000, run_parent=children, children_policy="all_settled"
    )
    root = executor.parent_task(
        id="root",
        timeout_ms=1000,
        run_parent=lambda ctx: {"output": "r", "children": [ChildTask(strict), ChildTask(lenient)]},
        children_policy=outer,
    )
    await executor.start()
    execution = await (await executor.enqueue_task(root)).wait_and_get_execution(timeout=20)
    if outer == "fail_fast":
        assert execution.status is S.CHILDREN_FAILED
        assert execution.error is not None
        assert "strict" in execution.error.message
        return
    assert execution.status is S.COMPLETED, execution.error
    first, second = execution.output["children"]
    assert (first["status"], second["status"]) == ("children_failed", "completed")
    assert "deep" in first["error"]["message"]
    inner = [c["status"] for c in second["output"]["children"]]
    assert inner == ["failed", "completed"]


async def test_cancelling_an_all_settled_parent_cancels_its_children(
    executor: DurableExecutor,
) -> None:
    never = asyncio.Event()

    async def hang(ctx: TaskContext) -> None:
        await never.wait()

    hanging = executor.task(id="hang", timeout_ms=60_000, run=hang)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1000,
        run_parent=lambda ctx: {
            "output": None,
            "children": [ChildTask(hanging), ChildTask(hanging)],
        },
        children_policy="all_settled",
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    ids = await _child_ids(executor, handle.execution_id, 2)
    await handle.cancel()
    assert (await handle.wait_and_get_execution(timeout=20)).status is S.CANCELLED
    for child_id in ids:

        async def cancelled(child_id: str = child_id) -> bool:
            return (await executor.get_execution(child_id)).status is S.CANCELLED

        await wait_until(cancelled, message=f"child {child_id} to be cancelled")
