"""Types of the ``children_policy`` option and of ``value.children``.

Checked by mypy (``make typecheck``), never run: nothing here executes at import.
"""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

from durable_execution import (
    ChildrenPolicy,
    ChildTaskResult,
    DurableExecutionErrorInfo,
    DurableExecutor,
    DurableTask,
    DurableTaskExecutionStatus,
    OnRunAndChildrenCompleteInput,
    ParentOutput,
    ParentResult,
    TaskContext,
)
from durable_execution.shapes import ChildResultDict


class Order(BaseModel):
    id: str


def run_parent(ctx: TaskContext, input: int) -> ParentResult[str]:
    return {"output": str(input)}


def settle(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[int, str]) -> int:
    first = value.children[0]
    assert_type(first, ChildTaskResult)
    assert_type(first.status, DurableTaskExecutionStatus)
    assert_type(first.error, DurableExecutionErrorInfo | None)
    assert_type(first.task_id, str)
    assert_type(first.execution_id, str)
    return sum(1 for c in value.children if c.status is DurableTaskExecutionStatus.COMPLETED)


def policies(ex: DurableExecutor, policy: ChildrenPolicy) -> None:
    settled = ex.parent_task(
        id="settled", timeout_ms=1, run_parent=run_parent, children_policy="all_settled"
    )
    assert_type(settled, DurableTask[int, ParentOutput[str]])
    chosen = ex.parent_task(
        id="chosen",
        timeout_ms=1,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "chosen_done", "timeout_ms": 1, "run": settle},
        children_policy=policy,
    )
    assert_type(chosen, DurableTask[int, int])
    ex.parent_task(
        id="typo",
        timeout_ms=1,
        run_parent=run_parent,
        children_policy="all-settled",  # type: ignore[call-overload]
    )
    ex.task(  # a plain task has no children policy
        id="plain",
        timeout_ms=1,
        run=lambda ctx, i: i,
        children_policy="all_settled",  # type: ignore[call-overload]
    )

    @ex.parent_task(id="decorated", timeout_ms=1, children_policy="all_settled")
    def decorated(ctx: TaskContext, input: int) -> ParentResult[None]:
        return {"output": None}

    assert_type(decorated, DurableTask[int, ParentOutput[None]])

    def with_order(ctx: TaskContext, order: Order) -> ParentResult[str]:
        return {"output": order.id}

    ex.input_schema(Order).parent_task(
        id="validated", timeout_ms=1, run_parent=with_order, children_policy="all_settled"
    )
    ex.parent_schema_task(
        id="schema", input_schema=Order, timeout_ms=1, run_parent=with_order,
        children_policy="fail_fast",
    )  # fmt: skip


def output_children(output: ParentOutput[Any]) -> list[ChildResultDict]:
    return output.get("children", [])
