"""Types from enqueue to handle to execution.

Checked by mypy (``make typecheck``), never run: nothing here executes at import.
"""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    DurableTaskExecution,
    DurableTaskHandle,
    ParentOutput,
)
from durable_execution.testing import run_task


class Name(BaseModel):
    name: str


async def enqueue(
    ex: DurableExecutor,
    task: DurableTask[int, str],
    no_input: DurableTask[None, bytes],
    named: DurableTask[Name | dict[str, Any], float],
    parent: DurableTask[int, ParentOutput[str]],
    untyped: DurableTask[Any, Any],
) -> None:
    handle = await ex.enqueue_task(task, 1)
    assert_type(handle, DurableTaskHandle[str])
    execution = await handle.wait_and_get_execution(timeout=1)
    assert_type(execution, DurableTaskExecution[str])
    assert_type(execution.output, str | None)
    assert_type((await handle.get_execution()).output, str | None)
    assert_type(
        await ex.enqueue_task(task, 2, delay_ms=1, priority=3, idempotency_key="k"),
        DurableTaskHandle[str],
    )
    # A task whose run function takes no input needs none.
    assert_type(await ex.enqueue_task(no_input), DurableTaskHandle[bytes])
    assert_type(await ex.enqueue_task(no_input, None), DurableTaskHandle[bytes])
    assert_type(await ex.enqueue_task(named, {"name": "ann"}), DurableTaskHandle[float])
    assert_type(await ex.enqueue_task(named, Name(name="ann")), DurableTaskHandle[float])
    parent_execution = await (await ex.enqueue_task(parent, 3)).wait_and_get_execution()
    if parent_execution.output is not None:
        assert_type(parent_execution.output["output"], str)
    assert_type(await ex.enqueue_task(untyped, object()), DurableTaskHandle[Any])
    assert_type(await ex.enqueue_task(untyped), DurableTaskHandle[Any])
    assert_type(await ex.get_task_handle(task, "te_1"), DurableTaskHandle[str])
    assert_type(await ex.get_execution("te_1"), DurableTaskExecution[Any])


async def batches(
    ex: DurableExecutor, task: DurableTask[int, str], other: DurableTask[str, int]
) -> None:
    handles = await ex.enqueue_tasks([(task, 1), (task, 2)])
    assert_type(handles, list[DurableTaskHandle[str]])
    assert_type(await ex.wait_and_get_executions(handles), list[DurableTaskExecution[str]])
    # A mix of tasks: the handles are untyped; ChildTask checks each input.
    mixed = await ex.enqueue_tasks([ChildTask(task, 1), ChildTask(other, "x")])
    assert_type(mixed, list[DurableTaskHandle[Any]])
    both = [await ex.enqueue_task(task, 1), await ex.enqueue_task(other, "x")]
    assert_type(await ex.wait_and_get_executions(both), list[DurableTaskExecution[object]])


async def run_to_the_end(
    ex: DurableExecutor, task: DurableTask[int, str], no_input: DurableTask[None, bytes]
) -> None:
    assert_type(await run_task(ex, task, 1), DurableTaskExecution[str])
    assert_type(await run_task(ex, no_input, timeout=5), DurableTaskExecution[bytes])
