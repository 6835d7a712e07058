"""``executor.retry_execution``: a failed tree resumes in place, on every backend; what other
executors remember of it does not hide the new outcome."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    ExecutionNotRetryableError,
    TaskContext,
)

from .conftest import StorageFactory

S = DurableTaskExecutionStatus


class Flaky:
    """Leaf runs, counted by input; input ``"bad"`` fails while ``broken`` is set."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.broken = threading.Event()
        self.broken.set()

    def __call__(self, ctx: TaskContext, value: str) -> str:
        self.runs[value] += 1
        if value == "bad" and self.broken.is_set():
            raise ValueError("still broken")
        return value.upper()


def define(executor: DurableExecutor, flaky: Flaky) -> Any:
    leaf = executor.task(id="leaf", timeout_ms=10_000, run=flaky)
    return executor.parent_task(
        id="tree",
        timeout_ms=10_000,
        run_parent=lambda ctx, i: {
            "output": i,
            "children": [ChildTask(leaf, "good"), ChildTask(leaf, "bad")],
        },
    )


async def test_a_failed_tree_resumes_in_place(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    """The failed child runs again, the completed one does not; the root completes with both
    outputs under the same id; a second retry of the completed root is refused."""
    flaky = Flaky()
    executor = make_executor()
    tree = define(executor, flaky)
    await executor.start()
    handle = await executor.enqueue_task(tree, 1)
    failed = await handle.wait_and_get_execution(timeout=20)
    assert failed.status is S.CHILDREN_FAILED
    flaky.broken.clear()
    again = await _retry_when_settled(executor, handle.execution_id)
    assert again.execution_id == handle.execution_id
    done = await again.wait_and_get_execution(timeout=20)
    assert done.status is S.COMPLETED
    assert [c["output"] for c in done.output["children_outputs"]] == ["GOOD", "BAD"]
    assert flaky.runs == {"good": 1, "bad": 2}
    with pytest.raises(ExecutionNotRetryableError) as refused:
        await executor.retry_execution(handle.execution_id)
    assert refused.value.reason == "completed"


async def _retry_when_settled(executor: DurableExecutor, execution_id: str) -> Any:
    """Retry once the tree settled (its cancelled descendants closed)."""
    from .helpers import wait_until

    result: list[Any] = []

    async def retried() -> bool:
        try:
            result.append(await executor.retry_execution(execution_id))
        except ExecutionNotRetryableError as exc:
            if exc.reason != "settling":
                raise
            return False
        return True

    await wait_until(retried, message=f"{execution_id} retried")
    return result[0]


async def test_another_executor_sees_the_new_outcome(
    make_executor: Callable[..., DurableExecutor], storage_factory: StorageFactory
) -> None:
    """The executor that saw the tree fail (and read it) sees it run and complete after an
    executor that was never started retried it: its memory held nothing that a retry
    changes."""
    flaky = Flaky()
    runner = make_executor()
    tree = define(runner, flaky)
    await runner.start()
    handle = await runner.enqueue_task(tree, 2)
    assert (await handle.wait_and_get_execution(timeout=20)).status is S.CHILDREN_FAILED
    assert (await handle.get_execution()).status is S.CHILDREN_FAILED
    operator = make_executor(await storage_factory())  # never started
    flaky.broken.clear()
    await _retry_when_settled(operator, handle.execution_id)
    done = await handle.wait_and_get_execution(timeout=20)
    assert done.status is S.COMPLETED
    assert done.retry_attempts == 0  # the root itself did not run again: it waited
    assert flaky.runs == {"good": 1, "bad": 2}


async def test_refusals(make_executor: Callable[..., DurableExecutor]) -> None:
    """Unknown id, a child, an unfinished root: each refused with a typed error."""
    flaky = Flaky()
    executor = make_executor()
    tree = define(executor, flaky)
    await executor.start()
    with pytest.raises(DurableExecutionNotFoundError):
        await executor.retry_execution("te_nope")
    handle = await executor.enqueue_task(tree, 3)
    await handle.wait_and_get_execution(timeout=20)
    child = (await handle.get_execution()).child_execution_ids[0]
    with pytest.raises(ExecutionNotRetryableError) as refused:
        await executor.retry_execution(child)
    assert refused.value.reason == "not_root"
    waiting = executor.task(id="waits", timeout_ms=60_000, run=lambda ctx: None)
    pending = await executor.enqueue_task(waiting, delay_ms=60_000)
    with pytest.raises(ExecutionNotRetryableError) as refused:
        await executor.retry_execution(pending.execution_id)
    assert refused.value.reason == "unfinished"
