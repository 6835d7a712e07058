"""Replacing an executor's storage before it starts (``use_storage``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from durable_execution import (
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableStorage,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.executor import ExecutorState
from durable_execution.executor import executor as executor_module
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.url import STORAGE_URL_ENV, default_storage

from .helpers import wait_until
from .test_executor_restart import CountingStorage, GatedStorage

S = DurableTaskExecutionStatus


async def test_a_default_storage_replaced_before_start_is_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORAGE_URL_ENV, f"sqlite:///{tmp_path}/app.db")
    executor = DurableExecutor(background_process_interval_ms=20)  # as at import time
    double = executor.task(id="double", timeout_ms=1000, run=lambda ctx, i: i * 2)
    assert isinstance(executor.storage, SQLiteStorage)
    memory = InMemoryStorage()
    executor.use_storage(memory)
    assert executor.storage is memory
    async with executor:
        handle = await executor.enqueue_task(double, 21)
        assert (await handle.wait_and_get_execution(timeout=10)).output == 42
    assert [r.task_id for r in await memory.get_executions([handle.execution_id])] == ["double"]
    assert not (tmp_path / "app.db").exists()


async def test_the_restarted_executor_runs_on_the_new_storage(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    double = executor.task(id="double", timeout_ms=1000, run=lambda ctx, i: i * 2)
    async with executor:
        first = await executor.enqueue_task(double, 1)
        assert (await first.wait_and_get_execution(timeout=10)).output == 2
    memory = InMemoryStorage()
    executor.use_storage(memory)
    async with executor:
        second = await executor.enqueue_task(double, 2)
        assert (await second.wait_and_get_execution(timeout=10)).output == 4
        with pytest.raises(DurableExecutionNotFoundError):  # handles read the new storage
            await first.get_execution()
    assert await memory.get_executions([first.execution_id]) == []
    assert await storage.get_executions([second.execution_id]) == []
    executor.use_storage(storage)
    async with executor:
        assert (await first.get_execution()).output == 2
        third = await executor.enqueue_task(double, 3)
        assert (await third.wait_and_get_execution(timeout=10)).output == 6


async def test_the_storage_cannot_change_while_the_executor_runs(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    gated = GatedStorage(storage)
    executor = make_executor(gated)
    release = threading.Event()

    def blocks(ctx: TaskContext, input: None) -> None:
        release.wait(10)

    blocker = executor.task(id="blocks", timeout_ms=20_000, run=blocks)
    gated.gate.clear()
    starting = asyncio.ensure_future(executor.start())
    await wait_until(lambda: gated.waiting, message="the start to reach the storage")
    with pytest.raises(RuntimeError, match=r"that is starting: call use_storage\(\) before start"):
        executor.use_storage(InMemoryStorage())
    gated.gate.set()
    await starting
    with pytest.raises(RuntimeError, match="that is started"):
        executor.use_storage(InMemoryStorage())
    await executor.enqueue_task(blocker)
    await wait_until(lambda: executor._engine.running, message="the blocker to run")
    shutting_down = asyncio.ensure_future(executor.shutdown())
    await wait_until(lambda: executor.state is ExecutorState.SHUTTING_DOWN)
    with pytest.raises(RuntimeError, match="that is shutting down"):
        executor.use_storage(InMemoryStorage())
    release.set()
    await shutting_down
    executor.use_storage(InMemoryStorage())


async def test_use_storage_refuses_what_is_not_a_storage(executor: DurableExecutor) -> None:
    with pytest.raises(ValueError, match="expected a DurableStorage"):
        executor.use_storage(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a DurableStorage"):
        executor.use_storage(InMemoryStorage)  # type: ignore[arg-type]


async def test_an_owned_storage_replaced_is_closed_at_shutdown_a_given_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORAGE_URL_ENV, f"sqlite:///{tmp_path}/app.db")
    monkeypatch.setattr(
        executor_module, "default_storage", lambda: CountingStorage(default_storage())
    )
    executor = DurableExecutor(background_process_interval_ms=20)
    owned = executor.storage
    assert isinstance(owned, CountingStorage)
    with pytest.raises(DurableExecutionNotFoundError):
        await executor.get_execution("te_unknown")  # opens the owned storage
    given = CountingStorage(InMemoryStorage())
    executor.use_storage(given)  # type: ignore[arg-type]
    assert owned.calls["close"] == 0
    async with executor:
        pass
    assert (owned.calls["close"], given.calls["close"]) == (1, 0)
    async with executor:
        pass
    assert (owned.calls["close"], given.calls["close"]) == (1, 0)
