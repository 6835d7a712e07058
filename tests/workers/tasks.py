"""Task definitions shared by the worker processes and the tests that drive them."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from durable_execution import ChildTask, DurableExecutor, DurableTask, TaskContext

LEAF_TIMEOUT_MS = 1_500
HOUR_MS = 3600 * 1000


def append_line(path: str, line: str) -> None:
    """Append one line; small appends are atomic across processes on a local disk."""
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")


def define_tasks(executor: DurableExecutor, name: str = "test") -> dict[str, DurableTask[Any, Any]]:
    """Register the tasks the crash, fencing and multi-process tests use."""

    async def leaf(ctx: TaskContext, input: dict[str, Any]) -> int:
        append_line(input["log"], f"start {input['index']} {os.getpid()}")
        await asyncio.sleep(input["seconds"])
        append_line(input["log"], f"end {input['index']} {os.getpid()}")
        return int(input["index"]) * 10

    leaf_task = executor.task(id="crash_leaf", timeout_ms=LEAF_TIMEOUT_MS, run=leaf)

    def spawn(ctx: TaskContext, input: dict[str, Any]) -> dict[str, Any]:
        children = [
            ChildTask(leaf_task, {"index": i, "seconds": input["seconds"], "log": input["log"]})
            for i in range(input["children"])
        ]
        return {"output": input["children"], "children": children}

    tree = executor.parent_task(
        id="crash_tree",
        timeout_ms=5_000,
        run_parent=spawn,
        on_run_and_children_complete={
            "id": "crash_tree_done",
            "timeout_ms": 5_000,
            "run": lambda ctx, v: sorted(c.output for c in v.children_outputs),
        },
    )

    def fenced(ctx: TaskContext, input: dict[str, Any]) -> str:
        time.sleep(input["seconds"])
        append_line(input["marker"], name)
        return name

    fenced_task = executor.task(id="fenced", timeout_ms=400, run=fenced)

    async def counted(ctx: TaskContext, input: dict[str, Any]) -> int:
        append_line(input["log"], ctx.execution_id)
        return int(input["n"])

    counted_task = executor.task(id="counted", timeout_ms=5_000, run=counted)

    def spawn_counted(ctx: TaskContext, input: dict[str, Any]) -> dict[str, Any]:
        children = [
            ChildTask(counted_task, {"n": n, "log": input["log"]}) for n in range(input["children"])
        ]
        return {"output": None, "children": children}

    counted_tree = executor.parent_task(
        id="counted_tree",
        timeout_ms=5_000,
        run_parent=spawn_counted,
        on_run_and_children_complete={
            "id": "counted_tree_done",
            "timeout_ms": 5_000,
            "run": lambda ctx, v: sum(c.output for c in v.children_outputs),
        },
    )

    async def hour_long(ctx: TaskContext, input: dict[str, Any]) -> int:
        """Hangs in its first run (a whole hour is its timeout), returns in the next one."""
        append_line(input["log"], f"start {os.getpid()} {time.time()}")
        if not os.path.exists(input["marker"]):
            append_line(input["marker"], "first")
            await asyncio.sleep(3600)
        return os.getpid()

    hour_task = executor.task(id="hour_long", timeout_ms=HOUR_MS, run=hour_long)

    async def poison(ctx: TaskContext, input: dict[str, Any]) -> None:
        append_line(input["log"], f"poison {os.getpid()} {time.time()}")
        await asyncio.sleep(input["seconds"])
        os._exit(1)  # kills the worker process, and every run in it

    poison_task = executor.task(id="poison", timeout_ms=60_000, run=poison)

    async def healthy(ctx: TaskContext, input: dict[str, Any]) -> int:
        append_line(input["log"], f"healthy {input['n']} {os.getpid()}")
        await asyncio.sleep(input["seconds"])
        return int(input["n"])

    healthy_task = executor.task(id="healthy", timeout_ms=60_000, run=healthy)

    approval = executor.sleeping_task(id="approval", timeout_ms=HOUR_MS)
    approval_order = executor.parent_task(
        id="approval_order",
        timeout_ms=5_000,
        run_parent=lambda ctx, order_id: {
            "output": order_id,
            "children": [ChildTask(approval, order_id)],
        },
    )
    return {
        "approval": approval,
        "approval_order": approval_order,
        "hour_long": hour_task,
        "poison": poison_task,
        "healthy": healthy_task,
        "tree": tree,
        "leaf": leaf_task,
        "fenced": fenced_task,
        "counted": counted_task,
        "counted_tree": counted_tree,
    }
