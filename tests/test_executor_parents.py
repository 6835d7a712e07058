"""Parent tasks: children, completion tasks, failures, sequences, limits, statuses on the way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.handle import DurableTaskHandle

from .helpers import wait_until

S = DurableTaskExecutionStatus


async def finish(executor: DurableExecutor, task: Any, input: Any = None) -> Any:
    handle = await executor.enqueue_task(task, input)
    return await handle.wait_and_get_execution(timeout=20)


async def test_parent_without_children(executor: DurableExecutor) -> None:
    parent = executor.parent_task(id="p", timeout_ms=1000, run_parent=lambda c, i: {"output": i})
    await executor.start()
    execution = await finish(executor, parent, 7)
    assert execution.status is S.COMPLETED
    assert execution.output == {"output": 7, "children_outputs": []}
    assert execution.child_execution_ids == ()


async def test_children_record_tree_links(executor: DurableExecutor) -> None:
    leaf = executor.task(
        id="leaf",
        timeout_ms=1000,
        run=lambda ctx, i: [ctx.parent_execution_id, ctx.root_execution_id],
    )
    middle = executor.parent_task(
        id="middle",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(leaf)]},
    )
    root = executor.parent_task(
        id="root",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(middle)]},
    )
    await executor.start()
    handle = await executor.enqueue_task(root)
    execution = await handle.wait_and_get_execution(timeout=10)
    middle_output = execution.output["children_outputs"][0]
    (leaf_output,) = middle_output["output"]["children_outputs"]
    assert leaf_output["output"] == [middle_output["execution_id"], handle.execution_id]
    assert execution.root_execution_id is None
    assert execution.parent_execution_id is None


async def test_completion_tasks_nest_three_deep(executor: DurableExecutor) -> None:
    leaf = executor.task(id="leaf", timeout_ms=1000, run=lambda ctx, i: i * 10)

    def spawn(ctx: TaskContext, value: Any) -> dict[str, Any]:
        previous = value.output if hasattr(value, "output") else value
        return {"output": previous, "children": [ChildTask(leaf, 1)]}

    def level(depth: int) -> dict[str, Any]:
        if depth == 3:
            return {
                "id": "level3",
                "timeout_ms": 1000,
                "run": lambda ctx, v: {"depth": 3, "sum": v.output + v.children_outputs[0].output},
            }
        return {
            "id": f"level{depth}",
            "timeout_ms": 1000,
            "run_parent": lambda ctx, v: {
                "output": v.output + v.children_outputs[0].output,
                "children": [ChildTask(leaf, 1)],
            },
            "on_run_and_children_complete": level(depth + 1),
        }

    root = executor.parent_task(
        id="root", timeout_ms=1000, run_parent=spawn, on_run_and_children_complete=level(1)
    )
    await executor.start()
    execution = await finish(executor, root, 0)
    assert execution.status is S.COMPLETED
    assert execution.output == {"depth": 3, "sum": 30}  # 0 + 10 + 10 + 10


async def test_failing_child_fails_parent_and_cancels_running_siblings(
    executor: DurableExecutor,
) -> None:
    sibling_started = asyncio.Event()
    sibling_stopped = asyncio.Event()
    finalize_runs: list[Any] = []

    async def slow(ctx: TaskContext, input: None) -> None:
        sibling_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            sibling_stopped.set()
            raise

    async def bad(ctx: TaskContext, input: None) -> None:
        await sibling_started.wait()
        raise RuntimeError("child broke")

    slow_task = executor.task(id="slow", timeout_ms=60_000, run=slow)
    bad_task = executor.task(id="bad", timeout_ms=5000, run=bad)
    parent = executor.parent_task(
        id="p",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [ChildTask(slow_task), ChildTask(bad_task)],
        },
        on_run_and_children_complete={
            "id": "p_done",
            "timeout_ms": 1000,
            "run": lambda c, v: finalize_runs.append(v),
        },
    )
    await executor.start()
    execution = await finish(executor, parent)
    assert execution.status is S.CHILDREN_FAILED
    assert "bad" in execution.error.message
    assert "child broke" in execution.error.message
    await asyncio.wait_for(sibling_stopped.wait(), 10)
    slow_handle = DurableTaskHandle(executor, "slow", execution.child_execution_ids[0])

    async def sibling_cancelled() -> bool:
        return (await slow_handle.get_execution()).status is S.CANCELLED

    await wait_until(sibling_cancelled, message="the sibling to be cancelled")
    assert finalize_runs == []


async def test_child_timing_out_fails_parent(executor: DurableExecutor) -> None:
    async def slow(ctx: TaskContext, input: None) -> None:
        await asyncio.sleep(30)

    slow_task = executor.task(id="slow", timeout_ms=30, run=slow)
    parent = executor.parent_task(
        id="p",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(slow_task)]},
    )
    await executor.start()
    execution = await finish(executor, parent)
    assert execution.status is S.CHILDREN_FAILED
    assert "timed_out" in execution.error.message


async def test_completion_task_failing(executor: DurableExecutor) -> None:
    def boom(ctx: TaskContext, value: Any) -> None:
        raise RuntimeError("cannot combine")

    parent = executor.parent_task(
        id="p",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": 1},
        on_run_and_children_complete={"id": "p_done", "timeout_ms": 1000, "run": boom},
    )
    await executor.start()
    execution = await finish(executor, parent)
    assert execution.status is S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED
    assert "cannot combine" in execution.error.message


async def test_malformed_parent_results_fail_the_parent(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(max_children_per_task_execution=3)
    leaf = executor.task(id="leaf", timeout_ms=1000, run=lambda ctx, i: i)
    results: dict[str, Any] = {
        "not_a_mapping": ["output"],
        "unknown_key": {"output": 1, "childs": []},
        "children_not_list": {"output": 1, "children": {"task": leaf}},
        "child_not_task": {"output": 1, "children": [{"task": "leaf", "input": 1}]},
        "child_wrong_shape": {"output": 1, "children": [42]},
        "too_many": {"output": 1, "children": [ChildTask(leaf, n) for n in range(4)]},
    }
    tasks = {
        name: executor.parent_task(
            id=name, timeout_ms=1000, max_retry_attempts=3, run_parent=lambda c, i, r=result: r
        )
        for name, result in results.items()
    }
    await executor.start()
    messages = {}
    for name, task in tasks.items():
        execution = await finish(executor, task)
        assert (execution.status, execution.retry_attempts) == (S.FAILED, 0), name
        assert execution.error.is_retryable is False
        messages[name] = execution.error.message
    assert "must return a mapping" in messages["not_a_mapping"]
    assert "childs" in messages["unknown_key"]
    assert "not a list" in messages["children_not_list"]
    assert "is not a task" in messages["child_not_task"]
    assert "child 0" in messages["child_wrong_shape"]
    assert "4 children, more than the limit of 3" in messages["too_many"]


async def test_sequential_tasks_failure_and_single_step(executor: DurableExecutor) -> None:
    calls: list[str] = []

    def step(name: str, fail: bool = False) -> DurableTask[Any, Any]:
        def run(ctx: TaskContext, value: int) -> int:
            calls.append(name)
            if fail:
                raise ValueError(f"{name} failed")
            return value + 1

        return executor.task(id=name, timeout_ms=1000, run=run)

    one, two, three = step("one"), step("two", fail=True), step("three")
    broken = executor.sequential_tasks(one, two, three, id="broken")
    single = executor.sequential_tasks(step("solo"), id="single")
    await executor.start()
    failed = await finish(executor, broken, 0)
    assert failed.status is S.CHILDREN_FAILED
    assert "Child task two" in failed.error.message
    assert "two failed" in failed.error.message
    assert len(failed.child_execution_ids) == 2  # the third step never started
    assert calls == ["one", "two"]
    assert (await finish(executor, single, 41)).output == 42


async def test_sequence_steps_are_its_children_in_order(
    executor: DurableExecutor, storage: Any
) -> None:
    """Each step is a child of the sequence, gets the previous output as its input, and the
    sequence's output is the last one; a step may itself be a parent."""
    double = executor.task(id="double", timeout_ms=1000, run=lambda c, v: v * 2)
    fan = executor.parent_task(
        id="fan",
        timeout_ms=1000,
        run_parent=lambda c, v: {"output": v, "children": [ChildTask(double, v)] * 2},
    )
    total = executor.task(
        id="total",
        timeout_ms=1000,
        run=lambda c, v: v["output"] + sum(k["output"] for k in v["children_outputs"]),
    )
    seq = executor.sequential_tasks(double, fan, total, double, id="mixed")
    await executor.start()
    execution = await finish(executor, seq, 1)
    assert (execution.status, execution.output) == (S.COMPLETED, 20)  # 2 → 2+4+4 → 10 → 20
    steps = await storage.get_executions(list(execution.child_execution_ids))
    assert [r.task_id for r in steps] == ["double", "fan", "total", "double"]
    assert [r.index_in_parent for r in steps] == [0, 1, 2, 3]
    assert [r.input for r in steps][2:] == [steps[1].output, steps[2].output]
    assert all(r.parent_execution_id == execution.execution_id for r in steps)
    assert all(r.is_closed for r in steps)


async def test_sequence_moves_on_whoever_runs_its_steps(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    """With one slot, a step cannot always be started by the executor that finished the one
    before: it is then claimed like any execution, and the sequence moves on when it
    advances. Two executors share the steps; every step runs once, in order."""
    seen: list[tuple[str, int]] = []
    executors = [make_executor(max_concurrent_task_executions=1) for _ in range(2)]
    sequences = []
    for ex in executors:
        steps = [
            ex.task(
                id=f"s{i}",
                timeout_ms=1000,
                run=lambda c, v, i=i: seen.append((f"s{i}", v)) or v + 1,
            )
            for i in range(6)
        ]
        sequences.append(ex.sequential_tasks(*steps, id="six"))
    await asyncio.gather(*(ex.start() for ex in executors))
    execution = await finish(executors[0], sequences[0], 0)
    assert (execution.status, execution.output) == (S.COMPLETED, 6)
    assert seen == [(f"s{i}", i) for i in range(6)]
    assert len(execution.child_execution_ids) == 6


async def test_a_thousand_children(executor: DurableExecutor) -> None:
    leaf = executor.task(id="leaf", timeout_ms=5000, run=lambda ctx, i: f"out-{i}")
    parent = executor.parent_task(
        id="p",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [ChildTask(leaf, n) for n in range(1000)],
        },
        on_run_and_children_complete={
            "id": "p_done",
            "timeout_ms": 5000,
            "run": lambda ctx, v: [c.output for c in v.children_outputs],
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    execution = await handle.wait_and_get_execution(timeout=60)
    assert execution.status is S.COMPLETED
    assert execution.output == [f"out-{n}" for n in range(1000)]


async def test_statuses_on_the_way(executor: DurableExecutor) -> None:
    """ready → running → waiting_for_children → waiting_for_on_run_and_children_complete →
    completed, each observed while the tree is held at that point."""
    gates = {name: asyncio.Event() for name in ("run", "child", "completion")}

    async def hold(name: str) -> None:
        await gates[name].wait()

    async def child_run(ctx: TaskContext, i: None) -> str:
        await hold("child")
        return "child"

    async def parent_run(ctx: TaskContext, i: None) -> dict[str, Any]:
        await hold("run")
        return {"output": "parent", "children": [ChildTask(child)]}

    async def finalize_run(ctx: TaskContext, v: Any) -> str:
        await hold("completion")
        return "final"

    child = executor.task(id="child", timeout_ms=10_000, run=child_run)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=10_000,
        run_parent=parent_run,
        on_run_and_children_complete={"id": "fin", "timeout_ms": 10_000, "run": finalize_run},
    )
    handle = await executor.enqueue_task(parent)
    assert (await handle.get_execution()).status is S.READY
    await executor.start()
    for gate, status in (
        ("run", S.RUNNING),
        ("child", S.WAITING_FOR_CHILDREN),
        ("completion", S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE),
    ):

        async def reached(expected: S = status) -> bool:
            return (await handle.get_execution()).status is expected

        await wait_until(reached, message=status.value)
        gates[gate].set()
    execution = await handle.wait_and_get_execution(timeout=10)
    assert (execution.status, execution.output) == (S.COMPLETED, "final")


async def test_long_sequences_keep_their_stored_inputs_small(
    executor: DurableExecutor, storage: Any
) -> None:
    steps = [executor.task(id=f"s{i}", timeout_ms=5000, run=lambda c, v: v + 1) for i in range(60)]
    chain = executor.sequential_tasks(*steps, id="chain")
    await executor.start()
    handle = await executor.enqueue_task(chain, 0)
    execution = await handle.wait_and_get_execution(timeout=60)
    assert execution.output == 60
    # Each step's stored input is the previous output, nothing more.
    steps = await storage.get_executions(list(execution.child_execution_ids))
    assert [r.input for r in steps] == [str(n) for n in range(60)]
    (record,) = await storage.get_executions([handle.execution_id])
    assert (record.children_count, record.completion_execution_id) == (60, None)
    # Each step started the next with its own outcome: the sequence was claimed to advance
    # once, after its last step (each advance claim takes a new lease token).
    assert record.lease_token == 2
