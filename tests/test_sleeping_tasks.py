"""Sleeping tasks on every backend: a parent waits for a sleeping child that another executor
(or another process) wakes up; timeouts, cancellations, duplicates and racing wake-ups."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DuplicateUniqueIdError,
    DurableExecutionError,
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableTask,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.errors import DurableExecutionErrorType
from durable_execution.storage.protocol import DurableStorage

from .processes import SharedStore

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]
DAY_MS = 24 * 3600 * 1000


def define(
    executor: DurableExecutor, timeout_ms: int = DAY_MS
) -> tuple[DurableTask[str, Any], Any]:
    """A sleeping task ``approval`` and a parent ``order`` that waits for its approval."""
    approval = executor.sleeping_task(id="approval", timeout_ms=timeout_ms)

    def run_parent(ctx: TaskContext, order_id: str) -> dict[str, Any]:
        return {"output": order_id, "children": [ChildTask(approval, order_id)]}

    order = executor.parent_task(id="order", timeout_ms=5_000, run_parent=run_parent)
    return approval, order


async def sleeping_child_of(executor: DurableExecutor, handle: Any) -> str:
    """The id of the parent's sleeping child, once it sleeps."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        parent = await handle.get_execution()
        if parent.child_execution_ids:
            (child_id,) = parent.child_execution_ids
            child = await executor.get_execution(child_id)
            assert child.status is S.SLEEPING
            return str(child_id)
        await asyncio.sleep(0.01)
    raise AssertionError("the parent never created its sleeping child")


async def test_another_executor_wakes_the_child_and_the_parent_completes(
    make_executor: MakeExecutor,
) -> None:
    worker = make_executor()
    _, order = define(worker)
    await worker.start()
    handle = await worker.enqueue_task(order, "order-17")
    child_id = await sleeping_child_of(worker, handle)

    web = make_executor()  # never started: a web handler's executor
    approval, _ = define(web)
    woken = await web.wakeup_sleeping_task_execution(
        approval, "order-17", output={"approved_by": "ada"}
    )
    assert woken.execution_id == child_id
    assert woken.status is S.COMPLETED
    assert woken.output == {"approved_by": "ada"}
    assert web.state.value == "new"

    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.COMPLETED
    assert execution.output["children_outputs"][0]["output"] == {"approved_by": "ada"}
    again = await web.wakeup_sleeping_task_execution(approval, "order-17", output="late")
    assert again.status is S.COMPLETED
    assert again.output == {"approved_by": "ada"}  # the first wake-up won


async def test_a_failed_wakeup_fails_the_parent(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    approval, order = define(worker)
    await worker.start()
    handle = await worker.enqueue_task(order, "order-18")
    await sleeping_child_of(worker, handle)
    woken = await worker.wakeup_sleeping_task_execution(
        approval,
        "order-18",
        status="failed",
        error=DurableExecutionError("rejected", is_retryable=False),
    )
    assert woken.status is S.FAILED
    assert woken.error is not None
    assert woken.error.message == "rejected"
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.CHILDREN_FAILED


async def test_not_woken_up_in_time_it_times_out(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    approval, order = define(worker, timeout_ms=300)
    await worker.start()
    handle = await worker.enqueue_task(order, "order-19")
    child_id = await sleeping_child_of(worker, handle)
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.CHILDREN_FAILED
    child = await worker.get_execution(child_id)
    assert child.status is S.TIMED_OUT
    assert child.error is not None
    assert child.error.error_type is DurableExecutionErrorType.TIMED_OUT
    late = await worker.wakeup_sleeping_task_execution(approval, "order-19", output=1)
    assert late.status is S.TIMED_OUT


async def test_a_cancelled_child_fails_the_parent(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    approval, order = define(worker)
    await worker.start()
    handle = await worker.enqueue_task(order, "order-20")
    child_id = await sleeping_child_of(worker, handle)
    await (await worker.get_task_handle(approval, child_id)).cancel()
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.CHILDREN_FAILED
    late = await worker.wakeup_sleeping_task_execution(approval, "order-20", output=1)
    assert late.status is S.CANCELLED


async def test_a_root_sleeping_execution(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    approval, _ = define(worker)
    await worker.start()
    handle = await worker.enqueue_task(approval, "root-1")
    assert (await handle.get_execution()).status is S.SLEEPING
    with pytest.raises(DuplicateUniqueIdError):
        await worker.enqueue_task(approval, "root-1")
    web = make_executor()
    web_approval, _ = define(web)
    await web.wakeup_sleeping_task_execution(web_approval, "root-1", output=[1, 2])
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.COMPLETED
    assert execution.output == [1, 2]
    second = await worker.enqueue_task(approval, "root-1")  # a finished one's id is free
    assert (await second.get_execution()).status is S.SLEEPING


async def test_unknown_ids_and_invalid_calls(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    approval, order = define(worker)
    with pytest.raises(DurableExecutionNotFoundError):
        await worker.wakeup_sleeping_task_execution(approval, "nobody", output=1)
    with pytest.raises(ValueError, match="sleeping task"):
        await worker.wakeup_sleeping_task_execution(order, "x", output=1)
    with pytest.raises(ValueError, match="unique id"):
        await worker.wakeup_sleeping_task_execution(approval, "", output=1)
    with pytest.raises(ValueError, match="'completed' or 'failed'"):
        await worker.wakeup_sleeping_task_execution(approval, "x", status="cancelled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs error"):
        await worker.wakeup_sleeping_task_execution(approval, "x", status="failed")
    with pytest.raises(ValueError, match="unique id"):
        await worker.enqueue_task(approval, 17)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sleeping task"):
        worker.sequential_tasks(approval, id="seq")


async def test_a_duplicate_child_fails_its_parent_clearly(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    _, order = define(worker)
    await worker.start()
    first = await worker.enqueue_task(order, "order-21")
    await sleeping_child_of(worker, first)
    second = await worker.enqueue_task(order, "order-21")
    execution = await second.wait_and_get_execution(timeout=10)
    assert execution.status is S.FAILED
    assert execution.error is not None
    assert not execution.error.is_retryable
    assert "order-21" in execution.error.message
    assert (await first.get_execution()).status is S.WAITING_FOR_CHILDREN


async def test_an_invalid_unique_id_fails_the_parent(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    approval = worker.sleeping_task(id="approval", timeout_ms=DAY_MS)
    parent = worker.parent_task(
        id="bad",
        timeout_ms=5_000,
        run_parent=lambda ctx: {"output": None, "children": [ChildTask(approval, 42)]},  # type: ignore[arg-type]
    )
    await worker.start()
    execution = await (await worker.enqueue_task(parent)).wait_and_get_execution(timeout=10)
    assert execution.status is S.FAILED
    assert execution.error is not None
    assert "unique id" in execution.error.message


async def test_a_wakeup_wakes_the_parent_at_once_not_at_the_next_poll(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    worker = make_executor(background_process_interval_ms=30_000)
    _, order = define(worker)
    await worker.start()
    handle = await worker.enqueue_task(order, "order-22")
    await sleeping_child_of(worker, handle)
    web = make_executor(storage)  # same storage object: its listeners (or NOTIFY) reach the worker
    approval, _ = define(web)
    started = time.monotonic()
    await web.wakeup_sleeping_task_execution(approval, "order-22", output="ok")
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.COMPLETED
    assert time.monotonic() - started < 5  # far below the 30 s poll interval


async def test_100_concurrent_wakeups_race_the_timeout(make_executor: MakeExecutor) -> None:
    worker = make_executor()
    _, order = define(worker, timeout_ms=50)
    await worker.start()
    handle = await worker.enqueue_task(order, "order-23")
    await sleeping_child_of(worker, handle)
    wakers = [make_executor() for _ in range(4)]
    tasks = [define(w)[0] for w in wakers]

    async def wake(n: int) -> Any:
        waker = wakers[n % 4]
        return await waker.wakeup_sleeping_task_execution(tasks[n % 4], "order-23", output=n)

    results = await asyncio.gather(*(wake(n) for n in range(100)))
    execution = await handle.wait_and_get_execution(timeout=10)
    final = await worker.get_execution(results[0].execution_id)
    assert final.status in (S.COMPLETED, S.TIMED_OUT)
    for result in results:
        assert result.execution_id == final.execution_id
        assert result.status is final.status
        assert result.output == final.output
    if final.status is S.COMPLETED:
        assert final.output in range(100)
        assert execution.status is S.COMPLETED
    else:
        assert execution.status is S.CHILDREN_FAILED


_WAKE_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url

async def main():
    storage = storage_from_url(sys.argv[1])
    executor = DurableExecutor(storage)
    approval = executor.sleeping_task(id="approval", timeout_ms=24 * 3600 * 1000)
    execution = await executor.wakeup_sleeping_task_execution(approval, sys.argv[2], output="far")
    print(execution.status.value, execution.output)
    await executor.shutdown()
    await storage.close()

asyncio.run(main())
"""


async def test_a_wakeup_from_another_process(
    store: SharedStore, controller: DurableExecutor
) -> None:
    _, order = define(controller)
    await controller.start()
    handle = await controller.enqueue_task(order, "order-24")
    await sleeping_child_of(controller, handle)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WAKE_FROM_ANOTHER_PROCESS,
        store.url,
        "order-24",
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    assert stdout.decode().split() == ["completed", "far"]
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.COMPLETED
    assert execution.output["children_outputs"][0]["output"] == "far"


async def test_a_deadline_that_passed_while_no_executor_ran_times_out_at_the_next_start(
    make_executor: MakeExecutor,
) -> None:
    first = make_executor()
    approval = first.sleeping_task(id="approval", timeout_ms=100)
    handle = await first.enqueue_task(approval, "root-2")  # never started: nothing runs
    started = time.monotonic()
    while time.monotonic() - started < 0.2:  # the deadline passes with no executor running
        assert (await handle.get_execution()).status is S.SLEEPING
        await asyncio.sleep(0.02)
    later = make_executor()
    later.task(id="unrelated", timeout_ms=1_000, run=lambda ctx: None)  # runs no sleeping task
    await later.start()
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.TIMED_OUT


def test_the_postgres_status_check_of_migration_6_lists_every_status() -> None:
    """Migration 6's CHECK is fixed text (a released migration never changes): it must list
    exactly the statuses of this release (a new status needs a migration of its own)."""
    from durable_execution.storage.postgres.schema import _V6_STATUS_VALUES

    listed = {value.strip(" '") for value in _V6_STATUS_VALUES.strip("()").split(",")}
    assert listed == {status.value for status in S}


async def test_woken_while_its_parents_executor_is_dead_the_next_one_finishes_the_parent(
    start_worker: Any, controller: DurableExecutor
) -> None:
    import signal

    from .workers.tasks import define_tasks

    tasks = define_tasks(controller)
    first = await start_worker("first")
    handle = await controller.enqueue_task(tasks["approval_order"], "order-25")
    await sleeping_child_of(controller, handle)
    first.kill()  # SIGKILL: the parent's executor dies while its child sleeps
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    woken = await controller.wakeup_sleeping_task_execution(
        tasks["approval"], "order-25", output="yes"
    )  # no executor runs: the wake-up is stored, the parent waits for one
    assert woken.status is S.COMPLETED
    assert (await handle.get_execution()).status is S.WAITING_FOR_CHILDREN
    await start_worker("second")
    execution = await handle.wait_and_get_execution(timeout=30)
    assert execution.status is S.COMPLETED
    assert execution.output["children_outputs"][0]["output"] == "yes"
