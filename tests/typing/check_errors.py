"""Code that must NOT type-check: each line carries ``# type: ignore[<code>]``, and mypy's
``warn_unused_ignores`` (on for this directory) fails ``make typecheck`` if the error is gone.

Checked by mypy, never run: nothing here executes at import.
"""

from __future__ import annotations

from pydantic import BaseModel

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    DurableTaskExecution,
    ExecutorOptions,
    ParentResult,
    TaskContext,
)
from durable_execution.testing import run_task


class Name(BaseModel):
    name: str


def to_str(ctx: TaskContext, input: int) -> str:
    return str(input)


def to_len(ctx: TaskContext, input: bytes) -> int:
    return len(input)


async def enqueue(
    ex: DurableExecutor, task: DurableTask[int, str], named: DurableTask[Name, str]
) -> None:
    await ex.enqueue_task(task, "1")  # type: ignore[misc]
    await ex.enqueue_task(task)  # type: ignore[arg-type]
    await ex.enqueue_task(named, 1)  # type: ignore[misc]
    execution = await (await ex.enqueue_task(task, 1)).wait_and_get_execution()
    as_int: int | None = execution.output  # type: ignore[assignment]
    as_str: str = execution.output  # type: ignore[assignment]
    ChildTask(task, "1")  # type: ignore[misc]
    ChildTask(task)  # type: ignore[arg-type]
    await run_task(ex, task, "1")  # type: ignore[misc]


def definitions(ex: DurableExecutor) -> None:
    def three(ctx: TaskContext, a: int, b: int) -> int:
        return a + b

    def no_ctx() -> int:
        return 1

    ex.task(id="a", timeout_ms=1, run=three)  # type: ignore[arg-type]
    ex.task(id="b", timeout_ms=1, run=no_ctx)  # type: ignore[arg-type]
    ex.task(id="c", run=to_str)  # type: ignore[call-overload]
    ex.task(id="d", timeout_ms="1", run=to_str)  # type: ignore[call-overload]
    ex.task(id="e", timeout_ms=1, retries=3, run=to_str)  # type: ignore[call-overload]
    str_task = ex.task(id="g", timeout_ms=1, run=to_str)
    bytes_task = ex.task(id="h", timeout_ms=1, run=to_len)
    ex.sequential_tasks(str_task, bytes_task)  # type: ignore[misc]
    ex.input_schema(Name).task(id="i", timeout_ms=1, run=to_str)  # type: ignore[arg-type]
    ex.input_schema(Name).task(id="j", timeout_ms=1, run=lambda ctx, input: input.nmae)  # type: ignore[attr-defined]
    ex.validate_input(len).task(id="k", timeout_ms=1, run=lambda ctx, i: i.upper())  # type: ignore[attr-defined]
    ex.input_schema(Name, validate_on_enqueue="yes")  # type: ignore[call-overload]
    ExecutorOptions(validate_on_enqueue="yes")  # type: ignore[arg-type]
    DurableExecutor(validate_on_enqueue=1.5)  # type: ignore[arg-type]


def parents(ex: DurableExecutor, task: DurableTask[int, str]) -> None:
    def returns_int(ctx: TaskContext, input: int) -> int:
        return input

    ex.parent_task(id="a", timeout_ms=1, run_parent=returns_int)  # type: ignore[arg-type]
    result: ParentResult[str] = {"output": 1}  # type: ignore[typeddict-item]
    bad_child: ParentResult[None] = {"output": None, "children": [ChildTask(task, "x")]}  # type: ignore[misc]
    not_a_child: ParentResult[None] = {"output": None, "children": [task]}  # type: ignore[list-item]

    def run_parent(ctx: TaskContext, input: int) -> dict[str, int]:
        return {"output": input}

    # The completion task's output is the parent's: a str here, not an int. (Assigned
    # directly to a DurableTask[int, int], the call would fall back to an untyped output.)
    inferred = ex.parent_task(
        id="b",
        timeout_ms=1,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "b_done", "timeout_ms": 1, "run": lambda ctx, v: "x"},
    )
    typed: DurableTask[int, int] = inferred  # type: ignore[assignment]


def variance(task: DurableTask[int, object]) -> None:
    # A task of ints does not take any object; its output is not known to be a str.
    wider_input: DurableTask[object, object] = task  # type: ignore[assignment]
    narrower_output: DurableTask[int, str] = task  # type: ignore[assignment]
    executions: list[DurableTaskExecution[str]] = []
    other: list[DurableTaskExecution[int]] = executions  # type: ignore[assignment]
