"""Executor lifecycle: start, shutdown, routing, sharing a storage, storage failures."""

from __future__ import annotations

import asyncio
import collections
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from durable_execution import (
    FINISHED_STATUSES,
    ChildTask,
    DurableExecutor,
    DurableStorageError,
    DurableTaskExecutionStatus,
    ExecutorShutdownError,
    TaskContext,
)
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.testing import DelegatingStorage

from .conftest import StorageFactory

S = DurableTaskExecutionStatus


async def test_async_with_starts_and_shuts_down(storage: DurableStorage) -> None:
    executor = DurableExecutor(storage, background_process_interval_ms=20)
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i * 2)
    async with executor as ex:
        assert ex is executor
        handle = await ex.enqueue_task(task, 21)
        assert (await handle.wait_and_get_execution(timeout=10)).output == 42
    with pytest.raises(ExecutorShutdownError):
        await executor.enqueue_task(task, 1)


async def test_start_twice_is_fine_and_start_after_shutdown_starts_again(
    executor: DurableExecutor,
) -> None:
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)
    await executor.start()
    await executor.start()
    await executor.shutdown()
    await executor.start()  # more in test_executor_restart.py
    handle = await executor.enqueue_task(task, 3)
    assert (await handle.wait_and_get_execution(timeout=10)).output == 3


async def test_after_shutdown_definitions_enqueues_and_handles_raise(
    executor: DurableExecutor,
) -> None:
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)
    await executor.start()
    handle = await executor.enqueue_task(task, 1)
    done = await handle.wait_and_get_execution(timeout=10)
    await executor.shutdown()
    await executor.shutdown()  # twice is fine
    with pytest.raises(ExecutorShutdownError):
        executor.task(id="b", timeout_ms=1000, run=lambda ctx, i: i)
    with pytest.raises(ExecutorShutdownError):
        await executor.enqueue_task(task, 2)
    with pytest.raises(ExecutorShutdownError):
        await executor.get_task_handle(task, handle.execution_id)
    # Handles obtained before still read.
    again = await handle.get_execution()
    assert (again.status, again.output) == (S.COMPLETED, done.output)


async def test_shutdown_without_start(executor: DurableExecutor) -> None:
    await executor.shutdown()
    with pytest.raises(ExecutorShutdownError):
        executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)


async def test_shutdown_while_task_runs_lets_it_notice_and_stores_result(
    executor: DurableExecutor,
) -> None:
    started = asyncio.Event()

    @executor.task(id="waits_for_shutdown", timeout_ms=10_000)
    async def waits(ctx: TaskContext, input: None) -> str:
        started.set()
        while not ctx.is_shutting_down():
            await asyncio.sleep(0.005)
        return "noticed shutdown"

    await executor.start()
    handle = await executor.enqueue_task(waits)
    await asyncio.wait_for(started.wait(), 10)
    await executor.shutdown()
    execution = await handle.get_execution()
    assert (execution.status, execution.output) == (S.COMPLETED, "noticed shutdown")


async def test_shutdown_closes_what_its_runs_finished_and_completes_their_parents(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    # The children end when they see the shutdown: their parent and its parent (a tree of two
    # levels) complete during the shutdown, not at the next start. The interval is long, so
    # the background loops could not have done it in between.
    executor = make_executor(background_process_interval_ms=60_000)
    started = asyncio.Event()

    @executor.task(id="leaf", timeout_ms=10_000)
    async def leaf(ctx: TaskContext, i: int) -> int:
        started.set()
        while not ctx.is_shutting_down():
            await asyncio.sleep(0.005)
        return i

    middle = executor.parent_task(
        id="middle",
        timeout_ms=10_000,
        run_parent=lambda ctx, i: {
            "output": i,
            "children": [ChildTask(leaf, i), ChildTask(leaf, 2)],
        },
    )
    root = executor.parent_task(
        id="root",
        timeout_ms=10_000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(middle, 1)]},
    )
    await executor.start()
    handle = await executor.enqueue_task(root)
    await asyncio.wait_for(started.wait(), 10)
    await executor.shutdown()
    execution = await handle.get_execution()
    assert execution.status is S.COMPLETED
    (middle_output,) = execution.output["children_outputs"]
    assert [c["output"] for c in middle_output["output"]["children_outputs"]] == [1, 2]


async def test_shutdown_gives_back_executions_that_do_not_stop(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    started = asyncio.Event()
    runs: list[int] = []

    def define(executor: DurableExecutor) -> Any:
        async def stubborn(ctx: TaskContext, input: None) -> str:
            runs.append(ctx.attempt)
            if len(runs) == 1:
                started.set()
                await asyncio.sleep(60)
            return "second run"

        return executor.task(id="stubborn", timeout_ms=30_000, run=stubborn)

    first = make_executor(shutdown_timeout_ms=100)
    task = define(first)
    await first.start()
    handle = await first.enqueue_task(task)
    await asyncio.wait_for(started.wait(), 10)
    await first.shutdown()
    released = await handle.get_execution()
    assert released.status is S.READY
    assert released.retry_attempts == 0  # a shutdown uses up no retry attempt

    second = make_executor()
    task_again = define(second)
    await second.start()
    again = await second.get_task_handle(task_again, handle.execution_id)
    finished = await again.wait_and_get_execution(timeout=10)
    assert (finished.status, finished.output, finished.retry_attempts) == (
        S.COMPLETED,
        "second run",
        0,
    )


class RecordingSerializer:
    """JSON with a marker, counting its calls."""

    def __init__(self) -> None:
        self.calls = collections.Counter[str]()

    def serialize(self, value: Any) -> str:
        self.calls["serialize"] += 1
        return "custom:" + json.dumps(value)

    def deserialize(self, data: str) -> Any:
        self.calls["deserialize"] += 1
        assert data.startswith("custom:")
        return json.loads(data.removeprefix("custom:"))


async def test_custom_serializer_is_used(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    serializer = RecordingSerializer()
    executor = make_executor(serializer=serializer)
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: {"doubled": i["n"] * 2})
    await executor.start()
    handle = await executor.enqueue_task(task, {"n": 4})
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.output == {"doubled": 8}
    (record,) = await storage.get_executions([handle.execution_id])
    assert record.input == 'custom:{"n": 4}'
    assert record.output == 'custom:{"doubled": 8}'
    assert serializer.calls["serialize"] >= 2
    assert serializer.calls["deserialize"] >= 2


async def test_executor_only_claims_tasks_it_registered(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    worker = make_executor()
    known = worker.task(id="known", timeout_ms=1000, run=lambda ctx, i: "ran")
    producer = make_executor()
    unknown = producer.task(id="unknown", timeout_ms=1000, run=lambda ctx, i: "ran")
    await worker.start()
    orphan = await producer.enqueue_task(unknown)
    # Once the worker ran something enqueued later, it has seen the orphan and skipped it.
    later = await worker.enqueue_task(known)
    assert (await later.wait_and_get_execution(timeout=10)).status is S.COMPLETED
    assert (await orphan.get_execution()).status is S.READY


async def test_two_executors_sharing_a_storage_run_each_execution_once(
    make_executor: Callable[..., DurableExecutor], storage_factory: StorageFactory
) -> None:
    runs = collections.Counter[str]()

    async def run(ctx: TaskContext, input: int) -> int:
        runs[ctx.execution_id] += 1
        await asyncio.sleep(0)
        return input

    executors = [make_executor(await storage_factory()) for _ in range(2)]
    tasks = [ex.task(id="shared", timeout_ms=5000, run=run) for ex in executors]
    for ex in executors:
        await ex.start()
    handles = await executors[0].enqueue_tasks([(tasks[0], n) for n in range(200)])
    results = await asyncio.gather(*(h.wait_and_get_execution(timeout=30) for h in handles))
    assert [r.output for r in results] == list(range(200))
    assert len(runs) == 200
    assert set(runs.values()) == {1}


class FlakyStorage(DelegatingStorage):
    """Delegates to a real storage; fails chosen operations on demand or at random."""

    def __init__(self, inner: DurableStorage, seed: int = 7) -> None:
        super().__init__(inner)
        self.fail_always: set[str] = set()
        self.fail_rate: dict[str, float] = {}
        self._random = random.Random(seed)
        self.failures = collections.Counter[str]()

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        rate = self.fail_rate.get(name, 0.0)
        if name in self.fail_always or (rate and self._random.random() < rate):
            self.failures[name] += 1
            raise DurableStorageError(f"injected failure in {name}")
        return await super().forward(name, *args, **kwargs)


async def test_enqueue_raises_the_storage_error_then_recovers(
    storage: DurableStorage,
) -> None:
    flaky = FlakyStorage(storage)
    executor = DurableExecutor(flaky, background_process_interval_ms=20)
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)
    async with executor:
        flaky.fail_always.add("insert_executions")
        with pytest.raises(DurableStorageError, match="injected failure"):
            await executor.enqueue_task(task, 1)
        flaky.fail_always.clear()
        handle = await executor.enqueue_task(task, 2)
        assert (await handle.wait_and_get_execution(timeout=10)).output == 2


async def test_intermittent_storage_failures_never_leave_an_illegal_state(
    storage: DurableStorage, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStorage(storage)
    executor = DurableExecutor(
        flaky,
        background_process_interval_ms=10,
        expire_leeway_ms=200,
    )
    child = executor.task(id="child", timeout_ms=500, run=lambda ctx, i: i + 1)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=500,
        run_parent=lambda ctx, i: {"output": i, "children": [{"task": child, "input": i}] * 3},
    )
    async with executor:
        handles = await executor.enqueue_tasks([(parent, n) for n in range(20)])
        for name in (
            "claim_ready_executions",
            "record_outcomes",
            "close_finished_executions",
            "claim_parents_to_advance",
            "expire_leases",
            "find_finished",
        ):
            flaky.fail_rate[name] = 0.3
        results = await asyncio.gather(*(h.wait_and_get_execution(timeout=30) for h in handles))
        flaky.fail_rate.clear()
    assert sum(flaky.failures.values()) > 0
    for n, result in enumerate(results):
        assert result.status in FINISHED_STATUSES
        assert result.status is S.COMPLETED, result.error
        assert [c["output"] for c in result.output["children_outputs"]] == [n + 1] * 3


async def test_default_storage_is_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DURABLE_EXECUTION_STORAGE_URL", raising=False)
    executor = DurableExecutor()
    assert isinstance(executor.storage, SQLiteStorage)
    assert executor.storage.path == "durable_execution.db"
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)
    async with executor:
        handle = await executor.enqueue_task(task, 5)
        assert (await handle.wait_and_get_execution(timeout=10)).output == 5
    assert (tmp_path / "durable_execution.db").exists()


async def test_storage_url_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLE_EXECUTION_STORAGE_URL", f"sqlite:///{tmp_path}/chosen.db")
    executor = DurableExecutor()
    assert isinstance(executor.storage, SQLiteStorage)
    assert executor.storage.path == f"{tmp_path}/chosen.db"
    await executor.shutdown()
    monkeypatch.setenv("DURABLE_EXECUTION_STORAGE_URL", "nosuch://x")
    with pytest.raises(ValueError, match="Unknown storage URL scheme"):
        DurableExecutor()
