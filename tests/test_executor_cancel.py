"""Cancellation: ready, running (async and sync), on another executor, whole trees."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    DurableExecutionErrorType,
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.handle import DurableTaskHandle

from .conftest import StorageFactory
from .helpers import wait_until

S = DurableTaskExecutionStatus


async def status_of(handle: DurableTaskHandle[Any]) -> S:
    return (await handle.get_execution()).status


async def wait_for_status(handle: DurableTaskHandle[Any], status: S) -> None:
    async def reached() -> bool:
        return await status_of(handle) is status

    await wait_until(reached, message=f"{handle.execution_id} to be {status.value}")


async def test_cancel_right_after_enqueue(executor: DurableExecutor) -> None:
    runs: list[str] = []
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: runs.append(ctx.execution_id))
    await executor.start()
    handle = await executor.enqueue_task(task)
    await asyncio.gather(*(handle.cancel() for _ in range(5)))  # concurrent cancels are fine
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.CANCELLED
    assert execution.error.error_type is DurableExecutionErrorType.CANCELLED
    assert execution.error.is_retryable is False
    assert len(runs) <= 1
    await handle.cancel()  # idempotent once finished
    assert await status_of(handle) is S.CANCELLED


async def test_cancel_before_start_never_runs(executor: DurableExecutor) -> None:
    runs: list[str] = []
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: runs.append("ran"))
    handle = await executor.enqueue_task(task)
    await handle.cancel()
    await executor.start()
    later = await executor.enqueue_task(task)
    await later.wait_and_get_execution(timeout=10)
    assert runs == ["ran"]  # only the later one
    assert await status_of(handle) is S.CANCELLED


async def test_cancel_unknown_execution(executor: DurableExecutor) -> None:
    handle: DurableTaskHandle[Any] = DurableTaskHandle(executor, "a", "te_nosuch")
    with pytest.raises(DurableExecutionNotFoundError):
        await handle.cancel()
    with pytest.raises(DurableExecutionNotFoundError):
        await handle.get_execution()


async def test_cancel_running_async_task(executor: DurableExecutor) -> None:
    started = asyncio.Event()
    got_cancelled = asyncio.Event()

    async def long(ctx: TaskContext, input: None) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            got_cancelled.set()
            raise
        return "finished"

    task = executor.task(id="long", timeout_ms=60_000, run=long)
    await executor.start()
    handle = await executor.enqueue_task(task)
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel()
    await asyncio.wait_for(got_cancelled.wait(), 10)
    execution = await handle.wait_and_get_execution(timeout=10)
    assert (execution.status, execution.output) == (S.CANCELLED, None)


async def test_cancel_running_sync_task_ignores_its_late_return(
    executor: DurableExecutor,
) -> None:
    started = threading.Event()
    saw_cancel = threading.Event()

    def long(ctx: TaskContext, input: None) -> str:
        started.set()
        deadline = time.monotonic() + 30
        while not ctx.is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.002)
        saw_cancel.set()
        return "returned anyway"

    task = executor.task(id="long", timeout_ms=60_000, run=long)
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(started.is_set, message="the sync task to start")
    await handle.cancel()
    await wait_until(saw_cancel.is_set, message="the sync task to see the cancellation")
    await executor.shutdown()  # drains pending writes: the late return must not land
    execution = await handle.get_execution()
    assert (execution.status, execution.output) == (S.CANCELLED, None)


async def test_cancel_reaches_the_executor_that_runs_it(
    make_executor: Callable[..., DurableExecutor], storage_factory: StorageFactory
) -> None:
    started = asyncio.Event()
    got_cancelled = asyncio.Event()

    async def long(ctx: TaskContext, input: None) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            got_cancelled.set()
            raise

    runner = make_executor(await storage_factory())
    runner.task(id="long", timeout_ms=60_000, run=long)
    controller = make_executor(await storage_factory())
    task = controller.task(id="long", timeout_ms=60_000, run=long)
    await runner.start()  # only the runner runs tasks
    handle = await controller.enqueue_task(task)
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel()
    await asyncio.wait_for(got_cancelled.wait(), 10)
    assert (await handle.wait_and_get_execution(timeout=10)).status is S.CANCELLED


async def test_cancel_parent_cancels_running_children_and_grandchildren(
    executor: DurableExecutor,
) -> None:
    running = {"child": asyncio.Event(), "grandchild": asyncio.Event()}
    stopped: list[str] = []

    async def blocking(ctx: TaskContext, input: str) -> None:
        running[input].set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(input)
            raise

    leaf = executor.task(id="leaf", timeout_ms=60_000, run=blocking)
    middle = executor.parent_task(
        id="middle",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [{"task": leaf, "input": "grandchild"}],
        },
    )
    root = executor.parent_task(
        id="root",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [{"task": leaf, "input": "child"}, {"task": middle, "input": None}],
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(root)
    await asyncio.wait_for(running["child"].wait(), 10)
    await asyncio.wait_for(running["grandchild"].wait(), 10)
    await handle.cancel()
    assert (await handle.wait_and_get_execution(timeout=10)).status is S.CANCELLED
    await wait_until(lambda: sorted(stopped) == ["child", "grandchild"], message="both stopped")
    root_execution = await handle.get_execution()
    child_handles = [
        DurableTaskHandle(executor, "x", c) for c in root_execution.child_execution_ids
    ]
    for child in child_handles:
        await wait_for_status(child, S.CANCELLED)
    middle_execution = await child_handles[1].get_execution()
    (grandchild_id,) = middle_execution.child_execution_ids
    await wait_for_status(DurableTaskHandle(executor, "leaf", grandchild_id), S.CANCELLED)


async def test_cancel_parent_waiting_for_its_completion_task(executor: DurableExecutor) -> None:
    started = asyncio.Event()

    async def completion(ctx: TaskContext, value: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    parent = executor.parent_task(
        id="p",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": "p"},
        on_run_and_children_complete={"id": "p_done", "timeout_ms": 60_000, "run": completion},
    )
    await executor.start()
    handle = await executor.enqueue_task(parent)
    await asyncio.wait_for(started.wait(), 10)
    execution = await handle.get_execution()
    assert execution.status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
    await handle.cancel()
    assert (await handle.wait_and_get_execution(timeout=10)).status is S.CANCELLED
    completion_handle = DurableTaskHandle(
        executor, "p_done", execution.completion_execution_id or ""
    )
    await wait_for_status(completion_handle, S.CANCELLED)


async def test_a_coroutine_returned_late_by_a_stopped_sync_task_is_closed(
    executor: DurableExecutor,
) -> None:
    import inspect

    started = threading.Event()
    release = threading.Event()
    returned: list[Any] = []

    async def later() -> str:
        return "never awaited"

    def long(ctx: TaskContext, input: None) -> Any:
        started.set()
        release.wait(30)
        coroutine = later()
        returned.append(coroutine)
        return coroutine

    task = executor.task(id="long", timeout_ms=60_000, run=long)
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(started.is_set, message="the sync task to start")
    await handle.cancel()
    assert (await handle.wait_and_get_execution(timeout=10)).status is S.CANCELLED
    release.set()
    await wait_until(lambda: returned, message="the thread to return")
    await wait_until(
        lambda: inspect.getcoroutinestate(returned[0]) == inspect.CORO_CLOSED,
        message="the dropped coroutine to be closed",
    )
