"""``max_task_threads``: sync tasks run at most that many at once per executor, an executor
claims sync executions only for its free threads (leaving the rest to the others), and async
tasks are neither counted nor held back by it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext
from durable_execution.cli.worker import WorkerSettings
from durable_execution.errors import DurableStorageError
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord

from .helpers import wait_until

S = DurableTaskExecutionStatus


class _Gate:
    """Sync tasks that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.started = 0

    def run(self, ctx: TaskContext, i: int) -> int:
        with self._lock:
            self.active += 1
            self.started += 1
            self.peak = max(self.peak, self.active)
        try:
            if not self.release.wait(10):
                raise TimeoutError("the test never released the gate")
            return i
        finally:
            with self._lock:
                self.active -= 1


async def _statuses(storage: DurableStorage, ids: list[str]) -> dict[S, int]:
    counts: dict[S, int] = {}
    for record in await storage.get_executions(ids):
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


async def _hold(storage: DurableStorage, ids: list[str], expected: dict[S, int]) -> None:
    """Wait for ``expected`` (a claim of every task may take executions a moment and give
    back those it has no thread for), then check it holds over ten of the executor's polls."""

    async def reached() -> bool:
        return await _statuses(storage, ids) == expected

    await wait_until(reached, message=f"statuses {expected}")
    for _ in range(10):
        assert await _statuses(storage, ids) == expected
        await asyncio.sleep(0.02)


async def test_sync_tasks_run_at_most_max_task_threads_at_once_and_the_rest_stay_ready(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    gate = _Gate()
    executor = make_executor(max_task_threads=2)
    task = executor.task(id="gated", timeout_ms=20_000, run=gate.run)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(6)])
    ids = [h.execution_id for h in handles]
    await wait_until(lambda: gate.started == 2, message="two sync runs started")
    await _hold(storage, ids, {S.RUNNING: 2, S.READY: 4})
    assert gate.active == 2
    gate.release.set()
    records = await executor.wait_and_get_executions(handles, timeout=30)
    assert [r.output for r in records] == list(range(6))
    assert gate.peak == 2


async def test_another_executor_takes_what_a_busy_one_has_no_thread_for(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    gate = _Gate()
    ran_on: list[str] = []

    def on(name: str) -> Callable[[TaskContext, int], int]:
        def run(ctx: TaskContext, i: int) -> int:
            ran_on.append(name)
            return gate.run(ctx, i)

        return run

    first = make_executor(max_task_threads=1)
    second = make_executor(max_task_threads=1)
    task = first.task(id="gated", timeout_ms=20_000, run=on("first"))
    second.task(id="gated", timeout_ms=20_000, run=on("second"))
    await first.start()
    handles = await first.enqueue_tasks([(task, n) for n in range(3)])
    await wait_until(lambda: gate.started == 1, message="the first executor's run")
    await _hold(storage, [h.execution_id for h in handles], {S.RUNNING: 1, S.READY: 2})
    await second.start()
    await wait_until(lambda: gate.started == 2, message="the second executor's run")
    assert sorted(ran_on) == ["first", "second"]
    gate.release.set()
    records = await first.wait_and_get_executions(handles, timeout=30)
    assert all(r.status is S.COMPLETED for r in records)


async def test_async_tasks_run_while_every_thread_is_taken(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    """Claimed, not dispatched: a client enqueues a backlog of sync executions bigger than a
    claim's batch, then async ones behind it; they run while the backlog waits."""
    gate = _Gate()

    async def double(ctx: TaskContext, i: int) -> int:
        return 2 * i

    executor, client = make_executor(max_task_threads=1), make_executor()
    for each in (executor, client):
        gated = each.task(id="gated", timeout_ms=20_000, run=gate.run)
        quick = each.task(id="double", timeout_ms=5_000, run=double)
    blocked = await client.enqueue_tasks([(gated, n) for n in range(150)])
    quick_handles = await client.enqueue_tasks([(quick, n) for n in range(20)])
    await executor.start()
    await wait_until(lambda: gate.started == 1, message="a sync run holding the thread")
    records = await executor.wait_and_get_executions(quick_handles, timeout=10)
    assert [r.output for r in records] == [2 * n for n in range(20)]
    assert gate.started == 1  # the sync ones still wait for the thread
    gate.release.set()
    await executor.wait_until_finished(blocked, timeout=30)
    assert gate.peak == 1


async def test_children_of_sync_tasks_are_dispatched_only_for_free_threads(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    gate = _Gate()
    executor = make_executor(max_task_threads=2)
    child = executor.task(id="gated", timeout_ms=20_000, run=gate.run)

    async def fan_out(ctx: TaskContext, n: int) -> dict[str, Any]:
        return {"output": n, "children": [{"task": child, "input": i} for i in range(n)]}

    parent = executor.parent_task(id="fan_out", timeout_ms=5_000, run_parent=fan_out)
    await executor.start()
    handle = await executor.enqueue_task(parent, 8)
    await wait_until(lambda: gate.started == 2, message="two children running")
    gate.release.set()
    record = await handle.wait_and_get_execution(timeout=30)
    assert record.status is S.COMPLETED
    assert gate.started == 8
    assert gate.peak == 2


class _DispatchDuringClaim(InMemoryStorage):
    """Runs ``during_first_claim`` while the first claim is in flight, before it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.during_first_claim: Callable[[], Any] | None = None

    async def claim_ready_executions(self, **kwargs: Any) -> list[ExecutionRecord]:
        hook, self.during_first_claim = self.during_first_claim, None
        if hook is not None:
            await hook()
        return await super().claim_ready_executions(**kwargs)


async def _four_waiting(
    storage: DurableStorage, gate: _Gate, threads: int
) -> tuple[list[Any], DurableExecutor, Any]:
    """Four gated executions enqueued by a client, and an executor (not started, polling
    every 20 ms, ``threads`` threads) that runs the gated task: the handles, the executor and
    its task."""
    loader = DurableExecutor(storage)
    loaded = loader.task(id="gated", timeout_ms=20_000, run=gate.run)
    handles = await loader.enqueue_tasks([(loaded, n) for n in range(4)])
    executor = DurableExecutor(storage, max_task_threads=threads, background_process_interval_ms=20)
    task = executor.task(id="gated", timeout_ms=20_000, run=gate.run)
    return handles, executor, task


async def test_sync_executions_claimed_past_the_threads_dispatch_took_are_given_back() -> None:
    storage = _DispatchDuringClaim()
    gate = _Gate()
    waiting, executor, task = await _four_waiting(storage, gate, threads=2)
    dispatched: list[str] = []

    async def enqueue_two() -> None:  # direct dispatch takes both threads
        dispatched.extend(h.execution_id for h in await executor.enqueue_tasks([(task, 10)] * 2))

    storage.during_first_claim = enqueue_two
    async with executor:
        await wait_until(lambda: gate.started == 2, message="the two dispatched runs")
        # The claim's two were given back, and stay ready.
        await _hold(storage, [h.execution_id for h in waiting], {S.READY: 4})
        (running,) = {r.status for r in await storage.get_executions(dispatched)}
        assert running is S.RUNNING
        gate.release.set()
        await executor.wait_until_finished([*waiting], timeout=30)
    assert gate.peak == 2
    assert gate.started == 6


async def test_executions_that_cannot_be_given_back_run_past_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A claim takes every task; the sync executions it has no thread for are given back. When
    that fails (a storage blip), they run at once, past ``max_task_threads``, instead of
    waiting for their leases to expire (each expiry counted against them)."""
    storage = _FailingRelease()
    gate = _Gate()
    handles, executor, _ = await _four_waiting(storage, gate, threads=1)
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        async with executor:
            await wait_until(lambda: gate.started == 4, message="all four runs")
            gate.release.set()
            records = await executor.wait_and_get_executions(handles, timeout=30)
    assert [(r.status, r.output, r.lease_expiries) for r in records] == [
        (S.COMPLETED, n, 0) for n in range(4)
    ]
    assert storage.release_calls == 1
    assert "giving back 3 claimed execution(s) failed" in caplog.text


class _FailingRelease(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.release_calls = 0

    async def release_executions(self, *args: Any, **kwargs: Any) -> Any:
        self.release_calls += 1
        raise DurableStorageError("injected: connection lost", is_transient=True)


@pytest.mark.parametrize("threads", [0, -1, 100_001])
def test_max_task_threads_out_of_range_is_refused(threads: int) -> None:
    with pytest.raises(ValueError, match="max_task_threads"):
        DurableExecutor(max_task_threads=threads)


def test_the_worker_flag_reaches_the_options_and_the_supervised_processes() -> None:
    settings = WorkerSettings(5.0, max_concurrent=100, threads=2)
    assert settings.executor_options()["max_task_threads"] == 2
    flags = settings.flags()
    assert flags[flags.index("--threads") + 1] == "2"
