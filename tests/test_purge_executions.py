"""``executor.purge_executions`` and ``DurableExecutor(retention=...)`` on every backend:
whole closed trees go, running trees stay untouched, idempotency keys are freed."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import ChildTask, DurableExecutor, DurableTaskExecutionStatus
from durable_execution.executor.retention import RetentionSettings
from durable_execution.storage.protocol import DurableStorage

from .conftest import StorageFactory
from .helpers import wait_until

S = DurableTaskExecutionStatus


def define(executor: DurableExecutor, gate: asyncio.Event) -> dict[str, Any]:
    leaf = executor.task(id="leaf", timeout_ms=10_000, run=lambda ctx, i: i)

    def fail(ctx: Any) -> None:
        raise ValueError("no")

    async def blocked(ctx: Any) -> str:
        await gate.wait()
        return "late"

    return {
        "tree": executor.parent_task(
            id="tree",
            timeout_ms=10_000,
            run_parent=lambda ctx, i: {"output": i, "children": [ChildTask(leaf, 1)]},
        ),
        "fail": executor.task(id="fail", timeout_ms=10_000, run=fail),
        "blocked": executor.task(id="blocked", timeout_ms=60_000, run=blocked),
        "leaf": leaf,
    }


async def _finished_forest(executor: DurableExecutor, tasks: dict[str, Any]) -> dict[str, Any]:
    handles = {
        "tree": await executor.enqueue_task(tasks["tree"], 1),
        "fail": await executor.enqueue_task(tasks["fail"]),
        "keyed": await executor.enqueue_task(tasks["leaf"], 5, idempotency_key="k-1"),
        "running": await executor.enqueue_task(tasks["blocked"]),
    }
    for name in ("tree", "fail", "keyed"):
        await handles[name].wait_and_get_execution(timeout=20)

    async def running() -> bool:
        return (await handles["running"].get_execution()).status is S.RUNNING

    await wait_until(running, message="the blocked task runs")
    return handles


async def _tree_ids(storage: DurableStorage, root_id: str) -> list[str]:
    (root,) = await storage.get_executions([root_id])
    return [root_id, *root.child_execution_ids]


async def _settled(storage: DurableStorage, ids: list[str]) -> bool:
    return all(r.is_closed for r in await storage.get_executions(ids))


async def test_purge_deletes_closed_trees_only(
    make_executor: Callable[..., DurableExecutor], storage_factory: StorageFactory
) -> None:
    """From a never-started executor: the closed trees go, children included; the running
    tree stays as it was; the key is free again."""
    gate = asyncio.Event()
    runner = make_executor()
    tasks = define(runner, gate)
    await runner.start()
    handles = await _finished_forest(runner, tasks)
    storage = runner.storage
    tree = await _tree_ids(storage, handles["tree"].execution_id)
    finished = [*tree, handles["fail"].execution_id, handles["keyed"].execution_id]
    await wait_until(lambda: _settled(storage, finished), message="closed")
    operator = make_executor(await storage_factory())  # never started
    running_before = await storage.get_executions([handles["running"].execution_id])
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)  # all finished before it
    assert await operator.purge_executions(finished_before=soon) == 3
    assert await storage.get_executions(finished) == []
    assert await storage.get_executions([handles["running"].execution_id]) == running_before
    again = await runner.enqueue_task(tasks["leaf"], 5, idempotency_key="k-1")
    assert again.execution_id != handles["keyed"].execution_id
    gate.set()
    done = await handles["running"].wait_and_get_execution(timeout=20)
    assert done.status is S.COMPLETED


async def test_purge_validates_its_arguments(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor()
    with pytest.raises(ValueError, match="timezone-aware"):
        await executor.purge_executions(finished_before=dt.datetime(2020, 1, 1))
    with pytest.raises(ValueError, match="limit"):
        await executor.purge_executions(finished_before=dt.timedelta(days=1), limit=0)
    with pytest.raises(ValueError, match="retention"):
        make_executor(retention=dt.timedelta(milliseconds=5))
    with pytest.raises(ValueError, match="retention"):
        make_executor(retention=30)


async def test_retention_purges_in_the_background(
    make_executor: Callable[..., DurableExecutor],
    storage_factory: StorageFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An executor with ``retention`` purges what finished longer ago, batch after batch,
    and logs it; the running tree stays. (Its clock runs two hours ahead, so that what just
    finished is past a retention of an hour.)"""
    gate = asyncio.Event()
    runner = make_executor()
    tasks = define(runner, gate)
    await runner.start()
    handles = await _finished_forest(runner, tasks)
    storage = runner.storage
    tree = await _tree_ids(storage, handles["tree"].execution_id)
    finished = [*tree, handles["fail"].execution_id, handles["keyed"].execution_id]
    await wait_until(lambda: _settled(storage, finished), message="closed")
    janitor = make_executor(await storage_factory(), retention=dt.timedelta(hours=1))
    janitor._clock = lambda: int(time.time() * 1000) + 2 * 3_600_000
    janitor._retention_settings = RetentionSettings(
        interval_ms=20, batch_trees=1, scan_rows=2, pause_ms=1
    )
    caplog.set_level(logging.INFO, logger="durable_execution")
    await janitor.start()

    async def purged() -> bool:
        return await storage.get_executions(finished) == []

    await wait_until(purged, message="purged by the retention")
    await wait_until(  # logged once its run of batches ended
        lambda: any("retention: purged" in r.getMessage() for r in caplog.records),
        message="the retention's log line",
    )
    (running,) = await storage.get_executions([handles["running"].execution_id])
    assert running.status is S.RUNNING
    gate.set()
    assert (await handles["running"].wait_and_get_execution(timeout=20)).status is S.COMPLETED
