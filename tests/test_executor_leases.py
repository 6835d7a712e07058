"""Heartbeat leases and poison tasks in the executor, on every backend: runs longer than their
lease keep it, a run whose claim is lost stops, renewals are batched and skipped when useless,
suspects run one at a time, and a lease that expires too often fails its execution."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    DurableExecutionErrorType,
    DurableExecutor,
    DurableStorage,
    DurableStorageError,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.storage.records import NewExecution
from durable_execution.storage.transitions import SUSPECT_LEASE_EXPIRIES
from durable_execution.testing import DelegatingStorage

from .helpers import wait_until

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]


class CountingRenewals(DelegatingStorage):
    """Records every ``renew_leases`` call (its leases)."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.renewals: list[list[tuple[str, int]]] = []

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "renew_leases":
            self.renewals.append(list(kwargs["leases"]))
        return await super().forward(name, *args, **kwargs)


async def test_a_run_longer_than_its_lease_keeps_it(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    """A run lasting several leases is renewed; the other executor, expiring leases all the
    while, never takes it over."""
    runs: list[int] = []
    owner = make_executor(lease_ms=500, expire_leeway_ms=0)
    watcher = make_executor(lease_ms=500, expire_leeway_ms=0)

    async def slow(ctx: TaskContext, input: None) -> str:
        runs.append(1)
        await asyncio.sleep(1.5)  # three leases
        return "done"

    task = owner.task(id="slow", timeout_ms=60_000, run=slow)
    await owner.start()
    handle = await owner.enqueue_task(task)
    await wait_until(lambda: runs, message="the run to start")
    await watcher.start()  # registers nothing: it only expires leases
    execution = await handle.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, "done")
    assert execution.lease_expiries == 0
    assert runs == [1]


async def test_renewals_are_one_call_for_all_runs_and_skip_leases_at_their_backstop(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    counting = CountingRenewals(storage)
    executor = make_executor(counting, lease_ms=600, expire_leeway_ms=0)
    release = asyncio.Event()

    async def wait(ctx: TaskContext, input: int) -> int:
        await release.wait()
        return input

    async def brief(ctx: TaskContext, input: int) -> int:
        await asyncio.sleep(0.4)
        return input

    long = executor.task(id="long", timeout_ms=60_000, run=wait)
    short = executor.task(id="short", timeout_ms=500, run=brief)  # leased for its timeout
    await executor.start()
    handles = await executor.enqueue_tasks([(long, n) for n in range(20)])
    done = await executor.enqueue_task(short, 1)
    await done.wait_and_get_execution(timeout=10)
    await wait_until(lambda: len(counting.renewals) >= 3, message="three heartbeats")
    release.set()
    await executor.wait_and_get_executions(handles, timeout=10)
    long_ids = {h.execution_id for h in handles}
    full = [call for call in counting.renewals if {i for i, _ in call} == long_ids]
    assert len(full) >= 3, counting.renewals  # every lease in one call
    assert all({i for i, _ in call} <= long_ids for call in counting.renewals)  # not short's


async def test_a_run_whose_claim_is_lost_is_stopped_and_runs_again(
    make_executor: MakeExecutor, timed_storage: DurableStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """Its lease taken back behind its back (as by an executor whose clock runs ahead), the
    next renewal is refused: the run is stopped, and the execution runs again."""
    executor = make_executor(lease_ms=300, expire_leeway_ms=0)
    stopped = asyncio.Event()
    runs: list[int] = []

    async def first_hangs(ctx: TaskContext, input: None) -> int:
        runs.append(1)
        if len(runs) == 1:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                stopped.set()
                raise
        return len(runs)

    task = executor.task(id="first_hangs", timeout_ms=60_000, run=first_hangs)
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(lambda: runs, message="the first run")
    ahead = int(time.time() * 1000) + 1_000  # past its lease; ready again a second later
    assert await timed_storage.expire_leases(now_ms=ahead, limit=10) == [handle.execution_id]
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        await asyncio.wait_for(stopped.wait(), 10)
        execution = await handle.wait_and_get_execution(timeout=10)
    assert (execution.status, execution.output, execution.lease_expiries) == (S.COMPLETED, 2, 1)
    assert "lost its lease" in caplog.text


@pytest.mark.parametrize("with_sync_task", [False, True], ids=["async-only", "with-sync"])
async def test_suspects_run_one_at_a_time_on_an_executor(
    make_executor: MakeExecutor, timed_storage: DurableStorage, with_sync_task: bool
) -> None:
    """Executions whose lease expired twice (maybe poison) run one at a time on an executor;
    the others run beside them as usual. With a sync task registered and fewer threads than
    slots, sync and async tasks are claimed apart, and the async suspects are still claimed."""
    executor = make_executor(max_concurrent_task_executions=10, max_task_threads=2)
    if with_sync_task:
        executor.task(id="sync", timeout_ms=1_000, run=lambda ctx, input: input)
    running: set[int] = set()
    suspects_at_once: list[int] = []

    async def track(ctx: TaskContext, input: int) -> int:
        running.add(input)
        suspects_at_once.append(len([n for n in running if n < 100]))
        await asyncio.sleep(0.05)
        running.discard(input)
        return input

    task = executor.task(id="track", timeout_ms=60_000, run=track)
    suspects = [f"suspect-{n}" for n in range(4)]
    now = 1_000  # long past: they are due at once
    await timed_storage.insert_executions(
        [NewExecution(i, "track", str(n), 0) for n, i in enumerate(suspects)], now
    )
    for _ in range(SUSPECT_LEASE_EXPIRIES):  # claimed by an executor that died, twice
        await timed_storage.claim_ready_executions(
            executor_id="dead", lease_ms_by_task={"track": 10}, now_ms=now, limit=10
        )
        now += 11
        assert len(await timed_storage.expire_leases(now_ms=now, limit=10)) == 4
    await executor.start()
    healthy = await executor.enqueue_tasks([(task, 100 + n) for n in range(4)])
    await executor.wait_and_get_executions(healthy, timeout=10)

    async def suspects_done() -> bool:
        return await timed_storage.find_finished(suspects) == set(suspects)

    await wait_until(suspects_done, message="every suspect to complete")
    assert len(suspects_at_once) == 8
    assert max(suspects_at_once) == 1, suspects_at_once


async def test_a_lease_that_expires_too_often_fails_the_execution_as_crashed(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    """A child whose lease expired ``max_lease_expiries`` times fails, not retryable, with the
    error type ``crashed``; its parent reacts as to any failed child."""
    executor = make_executor(max_lease_expiries=2)
    elsewhere = make_executor()  # the child's task is registered there only: never started
    child = elsewhere.task(id="child", timeout_ms=60_000, run=lambda ctx, i: i)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=60_000,
        run_parent=lambda ctx, i: {"output": i, "children": [{"task": child, "input": i}]},
    )
    await executor.start()
    handle = await executor.enqueue_task(parent, 5)

    async def child_ready(expiries: int) -> bool:
        ids = (await handle.get_execution()).child_execution_ids
        children = await storage.get_executions(ids)
        return [(c.status, c.lease_expiries) for c in children] == [(S.READY, expiries)]

    for expiries in range(2):  # each time claimed by an executor that dies at once
        await wait_until(lambda n=expiries: child_ready(n), message=f"the child ready ({expiries})")
        claimed = await storage.claim_ready_executions(
            executor_id="dies",
            lease_ms_by_task={"child": 10},
            now_ms=int(time.time() * 1000),
            limit=1,
        )
        assert len(claimed) == 1
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.CHILDREN_FAILED
    crashed = await executor.get_execution(execution.child_execution_ids[0])
    assert (crashed.status, crashed.lease_expiries) == (S.FAILED, 2)
    assert crashed.error is not None
    assert crashed.error.error_type is DurableExecutionErrorType.CRASHED
    assert not crashed.error.is_retryable
    assert "died 2 times" in crashed.error.message


class FailingRenewals(DelegatingStorage):
    """``renew_leases`` fails ``failures`` times in a row (the storage restarting, say)."""

    def __init__(self, inner: DurableStorage, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "renew_leases" and self.failures > 0:
            self.failures -= 1
            raise DurableStorageError("injected: the storage is restarting", is_transient=True)
        return await super().forward(name, *args, **kwargs)


async def test_failed_renewals_are_retried_before_the_lease_ends(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    """Two renewals in a row fail: the heartbeat tries again soon enough to keep the lease,
    and the other executor never takes the run over."""
    failing = FailingRenewals(storage, failures=2)
    owner = make_executor(failing, lease_ms=600, expire_leeway_ms=0)
    watcher = make_executor(lease_ms=600, expire_leeway_ms=0)
    runs: list[int] = []

    async def slow(ctx: TaskContext, input: None) -> int:
        runs.append(1)
        await asyncio.sleep(1.5)
        return len(runs)

    task = owner.task(id="slow", timeout_ms=60_000, run=slow)
    await owner.start()
    await watcher.start()
    handle = await owner.enqueue_task(task)
    execution = await handle.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output, execution.lease_expiries) == (S.COMPLETED, 1, 0)
    assert failing.failures == 0
