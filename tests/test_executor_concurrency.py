"""Backpressure: the concurrency limit holds, and everything still finishes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.records import ExecutionRecord

from .helpers import wait_until


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


class _ClaimsInFlight(InMemoryStorage):
    """Memory storage that records how many claims overlap (each yields to the loop once)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self.claims = 0

    async def claim_ready_executions(self, **kwargs: Any) -> list[ExecutionRecord]:
        self.in_flight += 1
        self.claims += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0)
            return await super().claim_ready_executions(**kwargs)
        finally:
            self.in_flight -= 1


async def _noop(ctx: TaskContext, i: int) -> int:
    return i


async def _run_backlog(storage: _ClaimsInFlight, count: int, **options: Any) -> None:
    """Enqueue ``count`` no-op (async) tasks with another executor, run them all on a new one."""
    loader = DurableExecutor(storage)
    task = loader.task(id="noop", timeout_ms=5000, run=_noop)
    handles = await loader.enqueue_tasks([(task, n) for n in range(count)])
    async with DurableExecutor(storage, **options) as executor:
        executor.task(id="noop", timeout_ms=5000, run=_noop)
        await executor.wait_until_finished(handles, timeout=30)


async def test_a_backlog_keeps_two_claims_in_flight() -> None:
    storage = _ClaimsInFlight()
    await _run_backlog(storage, 1000, max_task_executions_per_batch=100)
    assert storage.peak == 2


async def test_claims_do_not_overlap_without_slots_for_two_batches() -> None:
    storage = _ClaimsInFlight()
    await _run_backlog(
        storage, 500, max_task_executions_per_batch=100, max_concurrent_task_executions=150
    )
    assert storage.peak == 1


async def test_an_idle_executor_sends_one_claim_at_a_time() -> None:
    storage = _ClaimsInFlight()
    async with DurableExecutor(storage, background_process_interval_ms=10) as executor:
        executor.task(id="noop", timeout_ms=5000, run=lambda ctx, i: i)
        await wait_until(lambda: storage.claims >= 5, message="a few idle claims")
    assert storage.peak == 1
