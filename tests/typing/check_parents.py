"""Types inferred for parent tasks, their completion tasks and sequences.

Checked by mypy (``make typecheck``), never run: nothing here executes at import.
"""

from __future__ import annotations

from typing import Any, assert_type

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    IterationResult,
    LoopOutput,
    OnRunAndChildrenCompleteInput,
    ParentOutput,
    ParentResult,
    TaskContext,
)
from durable_execution.shapes import ChildOutputDict, CompletionSpec


def child_task(ex: DurableExecutor) -> DurableTask[int, str]:
    return ex.task(id="child", timeout_ms=1, run=lambda ctx, input: str(input))


def run_parent(ctx: TaskContext, input: int) -> ParentResult[str]:
    return {"output": str(input), "children": [ChildTask(child_task(DurableExecutor()), 1)]}


async def async_run_parent(ctx: TaskContext, input: int) -> ParentResult[str]:
    return {"output": str(input)}


def run_parent_no_input(ctx: TaskContext) -> ParentResult[float]:
    return {"output": 1.0, "children": []}


def run_parent_dict(ctx: TaskContext, input: int) -> dict[str, Any]:
    return {"output": input}


def combine(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[int, str]) -> bytes:
    assert_type(value.input, int)
    assert_type(value.output, str)
    return b"".join(str(c.output).encode() for c in value.children_outputs)


async def async_combine(ctx: TaskContext, value: Any) -> bytes:
    return b""


def without_completion(ex: DurableExecutor) -> None:
    p1 = ex.parent_task(id="p1", timeout_ms=1, run_parent=run_parent)
    assert_type(p1, DurableTask[int, ParentOutput[str]])
    p2 = ex.parent_task(id="p2", timeout_ms=1, run_parent=async_run_parent)
    assert_type(p2, DurableTask[int, ParentOutput[str]])
    p3 = ex.parent_task(id="p3", timeout_ms=1, run_parent=run_parent_no_input)
    assert_type(p3, DurableTask[None, ParentOutput[float]])
    # run_parent returning a plain dict: run_parent's output is not known.
    p4 = ex.parent_task(id="p4", timeout_ms=1, run_parent=run_parent_dict)
    assert_type(p4, DurableTask[int, ParentOutput[Any]])
    p5 = ex.parent_task(id="p5", timeout_ms=1, run_parent=lambda ctx, i: {"output": i})
    assert_type(p5, DurableTask[Any, Any])


def parent_output(output: ParentOutput[str]) -> None:
    assert_type(output["output"], str)
    assert_type(output["children_outputs"], list[ChildOutputDict])
    assert_type(output["children_outputs"][0]["execution_id"], str)


def with_completion(ex: DurableExecutor) -> None:
    spec: CompletionSpec[int, str, bytes] = {"id": "p1_done", "timeout_ms": 1, "run": combine}
    p1 = ex.parent_task(
        id="p1", timeout_ms=1, run_parent=run_parent, on_run_and_children_complete=spec
    )
    assert_type(p1, DurableTask[int, bytes])
    p2 = ex.parent_task(
        id="p2",
        timeout_ms=1,
        run_parent=run_parent_dict,
        on_run_and_children_complete={"id": "p2_done", "timeout_ms": 1, "run": async_combine},
    )
    assert_type(p2, DurableTask[int, bytes])
    # A lambda inside the mapping: its value is typed, its output inferred.
    p3 = ex.parent_task(
        id="p3",
        timeout_ms=1,
        run_parent=run_parent,
        on_run_and_children_complete={
            "id": "p3_done",
            "timeout_ms": 1,
            "run": lambda ctx, value: {"n": len(value.children_outputs)},
        },
    )
    assert_type(p3, DurableTask[int, dict[str, int]])
    p4 = ex.parent_task(
        id="p4",
        timeout_ms=1,
        run_parent=run_parent_no_input,
        on_run_and_children_complete={"id": "p4_done", "timeout_ms": 1, "run": combine},
    )
    assert_type(p4, DurableTask[None, bytes])


def untyped_completion(ex: DurableExecutor) -> None:
    # A completion that is itself a parent, or a mapping mypy cannot read: the output is Any.
    p1 = ex.parent_task(
        id="p1",
        timeout_ms=1,
        run_parent=run_parent,
        on_run_and_children_complete={
            "id": "p1_done",
            "timeout_ms": 1,
            "run_parent": lambda ctx, v: {"output": v.output},
            "on_run_and_children_complete": {
                "id": "p1_done_done",
                "timeout_ms": 1,
                "run": lambda ctx, v: v.output,
            },
        },
    )
    assert_type(p1, DurableTask[int, Any])
    options: dict[str, Any] = {"id": "p2_done", "timeout_ms": 1, "run": combine}
    p2 = ex.parent_task(
        id="p2", timeout_ms=1, run_parent=run_parent, on_run_and_children_complete=options
    )
    assert_type(p2, DurableTask[int, Any])


def decorator_form(ex: DurableExecutor) -> None:
    @ex.parent_task(id="p1", timeout_ms=1)
    async def p1(ctx: TaskContext, input: str) -> ParentResult[list[str]]:
        return {"output": [input]}

    @ex.parent_task(
        id="p2",
        timeout_ms=1,
        on_run_and_children_complete={"id": "p2_done", "timeout_ms": 1, "run": combine},
    )
    def p2(ctx: TaskContext, input: int) -> ParentResult[str]:
        return {"output": str(input)}

    @ex.parent_task(
        id="p3",
        timeout_ms=1,
        on_run_and_children_complete={"id": "p3_done", "timeout_ms": 1, "run": async_combine},
    )
    def p3(ctx: TaskContext) -> dict[str, Any]:
        return {"output": None}

    @ex.parent_task(id="p4", timeout_ms=1)
    def p4(ctx: TaskContext, input: int) -> dict[str, Any]:
        return {"output": None}

    assert_type(p1, DurableTask[str, ParentOutput[list[str]]])
    assert_type(p2, DurableTask[int, bytes])
    assert_type(p3, DurableTask[None, bytes])
    assert_type(p4, DurableTask[int, ParentOutput[Any]])


def children(ex: DurableExecutor, no_input: DurableTask[None, str]) -> None:
    task = child_task(ex)
    assert_type(ChildTask(task, 1), ChildTask[int])
    assert_type(ChildTask(no_input), ChildTask[None])
    assert_type(ChildTask(task, 1, attributes={"tenant": "acme"}), ChildTask[int])
    assert_type(ChildTask(no_input, attributes={"tenant": "acme"}), ChildTask[None])
    assert_type(ChildTask(task, 1, delay_ms=60_000), ChildTask[int])
    assert_type(ChildTask(no_input, delay_ms=60_000), ChildTask[None])
    result: ParentResult[None] = {
        "output": None,
        "children": [
            ChildTask(task, 2),
            {"task": task, "input": 3},
            {"task": no_input},
            {"task": task, "input": 4, "attributes": {"tenant": "acme"}},
            {"task": task, "input": 5, "delay_ms": 1_000},
        ],
    }
    assert_type(result["output"], None)


def sequences(ex: DurableExecutor) -> None:
    def to_str(ctx: TaskContext, input: int) -> str:
        return str(input)

    def to_bytes(ctx: TaskContext, input: str) -> bytes:
        return input.encode()

    def to_len(ctx: TaskContext, input: bytes) -> int:
        return len(input)

    a = ex.task(id="a", timeout_ms=1, run=to_str)
    b = ex.task(id="b", timeout_ms=1, run=to_bytes)
    c = ex.task(id="c", timeout_ms=1, run=to_len)
    assert_type(ex.sequential_tasks(a), DurableTask[int, str])
    assert_type(ex.sequential_tasks(a, b), DurableTask[int, bytes])
    assert_type(ex.sequential_tasks(a, b, c, id="abc"), DurableTask[int, int])
    assert_type(ex.sequential_tasks(a, b, c, a, b, c), DurableTask[int, int])
    # Past six tasks, only the first one's input is typed.
    assert_type(ex.sequential_tasks(a, b, c, a, b, c, a), DurableTask[int, Any])
    # A lambda task (input Any) fits anywhere.
    d = ex.task(id="d", timeout_ms=1, run=lambda ctx, input: input)
    assert_type(ex.sequential_tasks(a, d, c), DurableTask[int, int])


def loops(ex: DurableExecutor) -> None:
    def typed(ctx: TaskContext, url: str) -> IterationResult[int]:
        return {"is_done": True, "output": 200}

    poll = ex.task(id="poll", timeout_ms=1, run=typed)
    assert_type(
        ex.looping_task(id="loop", iteration_task=poll, max_iterations=3),
        DurableTask[str, LoopOutput[int]],
    )
    untyped = ex.task(id="untyped", timeout_ms=1, run=lambda ctx, url: {"is_done": True})
    assert_type(
        ex.looping_task(id="loop2", iteration_task=untyped, max_iterations=3),
        DurableTask[Any, LoopOutput[Any]],
    )
