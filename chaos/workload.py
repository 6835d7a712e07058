"""The chaos workload: the tasks the workers run, the outputs they must give, and the enqueuer.

Four kinds of roots, chosen by their number ``n``:

- ``chaos_leaf`` (n % 5 in 0, 1): an async task that sleeps ``ms`` and returns ``3n + 1``;
- ``chaos_tree`` (2): a parent (a sync ``run_parent``) with five leaf children and a completion
  task, which returns ``n`` plus the children's outputs: 7 executions;
- ``chaos_sequence`` (3): three async steps in a sequence, ``(n + 1) * 2 + 7``: 4 executions;
- ``chaos_mixed`` (4): a parent whose children are a leaf and a sequence, and a completion task
  that returns both outputs as a list: 7 executions.

That is 4 executions per root on average. Every run function records its start and its end in
the run log (:mod:`chaos.runlog`), and its output depends only on its input, so the expected
output of any root follows from its stored task id and input (:func:`expected_output`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableStorageError,
    DurableTask,
    OnRunAndChildrenCompleteInput,
    TaskContext,
)

from .runlog import RunLog

__all__ = [
    "ROOT_TASK_IDS",
    "Enqueuer",
    "Tasks",
    "define_tasks",
    "expected_output",
    "output_is_right",
    "root_item",
]

TIMEOUT_MS = 60_000  # far above any run: a timeout would only blur what the kills did
CHILDREN = 5
ROOT_TASK_IDS = ("chaos_leaf", "chaos_tree", "chaos_sequence", "chaos_mixed")


@dataclass(frozen=True)
class Tasks:
    """The workload's tasks, as one executor defined them."""

    leaf: DurableTask[Any, Any]
    tree: DurableTask[Any, Any]
    sequence: DurableTask[Any, Any]
    mixed: DurableTask[Any, Any]
    owned: DurableTask[Any, Any]  # a leaf whose output names the process that ran it
    poison: DurableTask[Any, Any]  # kills its process
    healthy: DurableTask[Any, Any]

    def root(self, kind: str) -> DurableTask[Any, Any]:
        """The root task of a kind (a task id of :data:`ROOT_TASK_IDS`)."""
        return {t.id: t for t in (self.leaf, self.tree, self.sequence, self.mixed)}[kind]


def leaf_value(n: int) -> int:
    return 3 * n + 1


def sequence_value(n: int) -> int:
    return (n + 1) * 2 + 7


def expected_output(task_id: str, input: Any) -> Any:
    """What a root of ``task_id`` given ``input`` must complete with."""
    n = int(input["n"])
    if task_id in ("chaos_leaf", "healthy"):
        return leaf_value(n) if task_id == "chaos_leaf" else n
    if task_id == "chaos_tree":
        return n + sum(leaf_value(10 * n + i) for i in range(CHILDREN))
    if task_id == "chaos_sequence":
        return sequence_value(n)
    if task_id == "chaos_mixed":
        return [leaf_value(n), sequence_value(n)]
    if task_id == "chaos_owned":
        return leaf_value(n)
    raise ValueError(f"no expected output for task {task_id!r}")


def output_is_right(task_id: str, input: Any, output: Any) -> bool:
    """Whether ``output`` is what a root of ``task_id`` given ``input`` must complete with
    (``chaos_owned`` also names the process that ran it: only its value is compared)."""
    if task_id == "chaos_owned":
        return isinstance(output, dict) and output.get("value") == expected_output(task_id, input)
    return bool(output == expected_output(task_id, input))


def root_item(n: int, tasks: Tasks) -> tuple[DurableTask[Any, Any], dict[str, int]]:
    """The ``n``-th root of the workload: its task and input (runs sleep 20 to 199 ms)."""
    kind = ROOT_TASK_IDS[max(0, n % 5 - 1)]
    return tasks.root(kind), {"n": n, "ms": 20 + (n * 37) % 180}


class _Notes:
    """Records runs in a run log, or nowhere (the harness defines the tasks only to enqueue)."""

    def __init__(self, runs: RunLog | None) -> None:
        self._runs = runs

    def __call__(self, kind: str, ctx: TaskContext) -> None:
        if self._runs is not None:
            self._runs.record(kind, ctx.execution_id, ctx.task_id)

    def wrap(self, fn: Callable[[TaskContext, Any], Any]) -> Callable[[TaskContext, Any], Any]:
        """A sync run function that records its start and end."""

        def run(ctx: TaskContext, value: Any) -> Any:
            self("start", ctx)
            output = fn(ctx, value)
            self("end", ctx)
            return output

        return run


def define_tasks(executor: DurableExecutor, runs: RunLog | None) -> Tasks:
    """Define the workload's tasks on ``executor``; runs are recorded in ``runs`` (``None`` in
    the harness, which only enqueues)."""

    note = _Notes(runs)

    async def leaf(ctx: TaskContext, input: dict[str, int]) -> int:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        note("end", ctx)
        return leaf_value(input["n"])

    leaf_task = executor.task(id="chaos_leaf", timeout_ms=TIMEOUT_MS, run=leaf)

    async def step_one(ctx: TaskContext, input: dict[str, int]) -> dict[str, int]:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        note("end", ctx)
        return {"v": input["n"] + 1, "ms": input["ms"]}

    async def step_two(ctx: TaskContext, input: dict[str, int]) -> dict[str, int]:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        note("end", ctx)
        return {"v": input["v"] * 2, "ms": input["ms"]}

    async def step_three(ctx: TaskContext, input: dict[str, int]) -> int:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        note("end", ctx)
        return input["v"] + 7

    sequence = executor.sequential_tasks(
        executor.task(id="chaos_step_one", timeout_ms=TIMEOUT_MS, run=step_one),
        executor.task(id="chaos_step_two", timeout_ms=TIMEOUT_MS, run=step_two),
        executor.task(id="chaos_step_three", timeout_ms=TIMEOUT_MS, run=step_three),
        id="chaos_sequence",
        timeout_ms=TIMEOUT_MS,
    )

    def spawn_leaves(ctx: TaskContext, input: dict[str, int]) -> dict[str, Any]:
        children = [
            ChildTask(leaf_task, {"n": 10 * input["n"] + i, "ms": input["ms"]})
            for i in range(CHILDREN)
        ]
        return {"output": input["n"], "children": children}

    def add_up(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[Any, Any]) -> int:
        return int(value.output) + sum(int(c.output) for c in value.children_outputs)

    tree = executor.parent_task(
        id="chaos_tree",
        timeout_ms=TIMEOUT_MS,
        run_parent=note.wrap(spawn_leaves),
        on_run_and_children_complete={
            "id": "chaos_tree_done",
            "timeout_ms": TIMEOUT_MS,
            "run": note.wrap(add_up),
        },
    )

    def spawn_mixed(ctx: TaskContext, input: dict[str, int]) -> dict[str, Any]:
        children = [ChildTask(leaf_task, input), ChildTask(sequence, input)]
        return {"output": None, "children": children}

    def gather(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[Any, Any]) -> list[Any]:
        return [c.output for c in value.children_outputs]

    mixed = executor.parent_task(
        id="chaos_mixed",
        timeout_ms=TIMEOUT_MS,
        run_parent=note.wrap(spawn_mixed),
        on_run_and_children_complete={
            "id": "chaos_mixed_done",
            "timeout_ms": TIMEOUT_MS,
            "run": note.wrap(gather),
        },
    )
    return Tasks(leaf_task, tree, sequence, mixed, *_extra_tasks(executor, note))


def _extra_tasks(
    executor: DurableExecutor, note: _Notes
) -> tuple[DurableTask[Any, Any], DurableTask[Any, Any], DurableTask[Any, Any]]:
    """The tasks of the pause and poison scenarios."""

    async def owned(ctx: TaskContext, input: dict[str, int]) -> dict[str, int]:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        note("end", ctx)
        return {"value": leaf_value(input["n"]), "pid": os.getpid()}

    async def poison(ctx: TaskContext, input: dict[str, int]) -> None:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        os._exit(1)  # kills the worker process, and every run in it

    async def healthy(ctx: TaskContext, input: dict[str, int]) -> int:
        note("start", ctx)
        await asyncio.sleep(input["ms"] / 1000)
        note("end", ctx)
        return input["n"]

    return (
        executor.task(id="chaos_owned", timeout_ms=TIMEOUT_MS, run=owned),
        executor.task(id="chaos_poison", timeout_ms=TIMEOUT_MS, run=poison),
        executor.task(id="healthy", timeout_ms=TIMEOUT_MS, run=healthy),
    )


@dataclass
class Enqueuer:
    """Enqueues the workload's roots at a steady rate, as an application would.

    ``acknowledged`` holds the ids of every root whose enqueue returned: those must never be
    lost. An enqueue that raises (the storage is down, the disk full) is counted in
    ``refused`` and its roots are not acknowledged; the next batch is tried ``retry_s``
    later.
    """

    executor: DurableExecutor
    tasks: Tasks
    per_second: float
    batch: int = 10
    retry_s: float = 0.2
    acknowledged: list[str] = field(default_factory=list)
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    _next_n: int = 0

    async def run_for(self, seconds: float, until: asyncio.Event | None = None) -> None:
        """Enqueue batches until ``seconds`` have passed or ``until`` is set (never waits past
        that, plus the enqueue in flight, itself bounded by 30 s)."""
        interval = self.batch / self.per_second
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        stop = asyncio.Event() if until is None else until
        while time.monotonic() < deadline and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            if stop.is_set():
                break
            if await self.enqueue_batch():
                next_at += interval
            else:
                next_at = time.monotonic() + self.retry_s

    async def enqueue_batch(self, size: int | None = None) -> bool:
        """Enqueue the next ``size`` roots (a batch) in one call; False if it was refused."""
        count = self.batch if size is None else size
        items = [root_item(self._next_n + i, self.tasks) for i in range(count)]
        try:
            handles = await asyncio.wait_for(self.executor.enqueue_tasks(items), 30)
        except (DurableStorageError, TimeoutError) as exc:
            self.refused += 1
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return False
        self._next_n += count
        self.acknowledged += [h.execution_id for h in handles]
        return True
