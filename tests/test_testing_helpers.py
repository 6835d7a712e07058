"""The helpers for users' tests: ``run_task`` and ``in_memory``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from durable_execution import (
    DurableExecutionError,
    DurableExecutor,
    DurableStorage,
    DurableTaskExecutionStatus,
    TaskContext,
    WaitTimeoutError,
)
from durable_execution.executor import ExecutorState
from durable_execution.executor import executor as executor_module
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.url import STORAGE_URL_ENV, default_storage
from durable_execution.testing import in_memory, run_task

from .test_executor_restart import CountingStorage

S = DurableTaskExecutionStatus


async def test_run_task_starts_a_new_executor_for_the_call_only(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    double = executor.task(id="double", timeout_ms=1000, run=lambda ctx, i: i * 2)
    execution = await run_task(executor, double, 21)
    assert (execution.status, execution.output, execution.task_id) == (S.COMPLETED, 42, "double")
    assert executor.state is ExecutorState.SHUT_DOWN
    (record,) = await storage.get_executions([execution.execution_id])
    assert record.status is S.COMPLETED
    again = await run_task(executor, double, 5)  # started again for this call
    assert again.output == 10
    assert executor.state is ExecutorState.SHUT_DOWN


async def test_run_task_leaves_a_started_executor_started(executor: DurableExecutor) -> None:
    add = executor.task(id="add", timeout_ms=1000, run=lambda ctx, i: i["a"] + i["b"])
    await executor.start()
    assert (await run_task(executor, add, {"a": 1, "b": 2})).output == 3
    assert executor.state is ExecutorState.STARTED


async def test_run_task_returns_a_failed_execution_and_runs_whole_trees(
    executor: DurableExecutor,
) -> None:
    def fail(ctx: TaskContext, input: None) -> None:
        raise DurableExecutionError("no luck", is_retryable=False)

    failing = executor.task(id="fail", timeout_ms=1000, run=fail)
    child = executor.task(id="child", timeout_ms=1000, run=lambda ctx, i: i + 1)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": i, "children": [{"task": child, "input": i}] * 2},
        on_run_and_children_complete={
            "id": "sum",
            "timeout_ms": 1000,
            "run": lambda ctx, value: sum(c.output for c in value.children_outputs),
        },
    )
    await executor.start()
    failed = await run_task(executor, failing)
    assert failed.status is S.FAILED
    assert failed.error is not None
    assert failed.error.message == "no luck"
    tree = await run_task(executor, parent, 1)
    assert (tree.status, tree.output) == (S.COMPLETED, 4)


async def test_run_task_past_its_timeout_cancels_the_execution(
    executor: DurableExecutor,
) -> None:
    ids: list[str] = []
    stopped = asyncio.Event()

    @executor.task(id="forever", timeout_ms=60_000)
    async def forever(ctx: TaskContext, input: None) -> None:
        ids.append(ctx.execution_id)
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    await executor.start()
    with pytest.raises(WaitTimeoutError):
        await run_task(executor, forever, timeout=0.2)
    (execution_id,) = ids
    assert (await executor.get_execution(execution_id)).status is S.CANCELLED
    await asyncio.wait_for(stopped.wait(), 10)  # the run was stopped, not left behind


async def test_in_memory_runs_on_a_fresh_storage_and_puts_the_previous_one_back(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    double = executor.task(id="double", timeout_ms=1000, run=lambda ctx, i: i * 2)
    seen: list[str] = []
    for n in range(2):
        async with in_memory(executor) as running:
            assert running is executor
            assert executor.state is ExecutorState.STARTED
            assert isinstance(executor.storage, InMemoryStorage)
            execution = await run_task(executor, double, n)
            assert execution.output == 2 * n
            assert await executor.storage.get_executions(seen) == []  # empty each time
            seen.append(execution.execution_id)
        assert executor.state is ExecutorState.SHUT_DOWN
        assert executor.storage is storage
    assert await storage.get_executions(seen) == []


async def test_in_memory_puts_the_storage_back_when_the_block_raises(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    with pytest.raises(KeyError):
        async with in_memory(executor):
            raise KeyError("boom")
    assert executor.storage is storage
    assert executor.state is ExecutorState.SHUT_DOWN


async def test_in_memory_refuses_a_started_executor(executor: DurableExecutor) -> None:
    await executor.start()
    with pytest.raises(RuntimeError, match="that is started"):
        async with in_memory(executor):
            pass  # pragma: no cover
    assert executor.state is ExecutorState.STARTED


async def test_in_memory_keeps_a_default_storage_owned_and_never_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORAGE_URL_ENV, f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setattr(
        executor_module, "default_storage", lambda: CountingStorage(default_storage())
    )
    executor = DurableExecutor(background_process_interval_ms=20)  # as at import time
    double = executor.task(id="double", timeout_ms=1000, run=lambda ctx, i: i * 2)
    app_storage = executor.storage
    assert isinstance(app_storage, CountingStorage)
    for n in range(3):
        async with in_memory(executor):
            assert (await run_task(executor, double, n)).output == 2 * n
        assert executor.storage is app_storage
    assert app_storage.calls["initialize"] == 0
    assert not (tmp_path / "app.db").exists()
    closes = app_storage.calls["close"]
    async with executor:  # the application's own storage again, closed by its shutdown
        assert (await run_task(executor, double, 4)).output == 8
    assert app_storage.calls["close"] == closes + 1
    assert (tmp_path / "app.db").exists()


def test_importing_the_testing_helpers_does_not_import_pytest() -> None:
    code = (
        "import sys, durable_execution.testing as t; "
        "assert t.run_task and t.in_memory and t.StorageConformanceSuite; "
        "assert 'pytest' not in sys.modules, 'pytest was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
