"""Backpressure: the concurrency limit holds, and everything still finishes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext


async def test_concurrency_limit(make_executor: Callable[..., DurableExecutor]) -> None:
    executor = make_executor(max_concurrent_task_executions=3)
    active = 0
    peak = 0

    async def work(ctx: TaskContext, input: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.03)
        active -= 1
        return input

    task = executor.task(id="work", timeout_ms=5000, run=work)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(10)])
    results = await asyncio.gather(*(h.wait_and_get_execution(timeout=30) for h in handles))
    assert all(r.status is DurableTaskExecutionStatus.COMPLETED for r in results)
    assert [r.output for r in results] == list(range(10))
    assert peak == 3
