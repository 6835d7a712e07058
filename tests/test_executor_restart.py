"""Starting an executor again after a shutdown, on every backend."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from durable_execution import (
    DurableExecutor,
    DurableStorage,
    DurableTask,
    DurableTaskExecutionStatus,
    ExecutorShutdownError,
    TaskContext,
)
from durable_execution.executor import ExecutorState
from durable_execution.executor import executor as executor_module
from durable_execution.storage.url import STORAGE_URL_ENV, default_storage
from durable_execution.testing import DelegatingStorage

from .helpers import wait_until

S = DurableTaskExecutionStatus
LOOPS = {f"durable-execution-{name}" for name in ("run", "advance", "close", "cancel", "expire")}


def background_loops() -> collections.Counter[str]:
    """The executor loops running now, by name (a storage's own tasks are not counted)."""
    return collections.Counter(t.get_name() for t in asyncio.all_tasks() if t.get_name() in LOOPS)


def define_probes(executor: DurableExecutor) -> tuple[DurableTask[Any, Any], DurableTask[Any, Any]]:
    """A sync and an async task that report where and how they ran."""

    def sync_probe(ctx: TaskContext, input: int) -> dict[str, Any]:
        return {
            "n": input,
            "thread": threading.current_thread().name,
            "shutting_down": ctx.is_shutting_down(),
        }

    async def async_probe(ctx: TaskContext, input: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"n": input, "shutting_down": ctx.is_shutting_down()}

    return (
        executor.task(id="sync_probe", timeout_ms=5_000, run=sync_probe),
        executor.task(id="async_probe", timeout_ms=5_000, run=async_probe),
    )


async def run_probes(
    executor: DurableExecutor, probes: tuple[DurableTask[Any, Any], ...], n: int
) -> None:
    sync_probe, async_probe = probes
    handles = [
        await executor.enqueue_task(sync_probe, n),
        await executor.enqueue_task(async_probe, n),
    ]
    done = await executor.wait_and_get_executions(handles, timeout=10)
    assert [e.status for e in done] == [S.COMPLETED, S.COMPLETED], [e.error for e in done]
    sync_out, async_out = (e.output for e in done)
    assert sync_out["n"] == async_out["n"] == n
    assert sync_out["thread"].startswith("durable-task")  # in the fresh thread pool
    assert not sync_out["shutting_down"]  # a fresh shutdown event
    assert not async_out["shutting_down"]


async def test_start_shutdown_cycles_run_sync_and_async_tasks(executor: DurableExecutor) -> None:
    probes = define_probes(executor)
    for cycle in range(3):
        await executor.start()
        assert executor.state is ExecutorState.STARTED
        await run_probes(executor, probes, cycle)
        await executor.shutdown()
        assert executor.state is ExecutorState.SHUT_DOWN
    assert not background_loops()


async def test_async_with_twice_on_one_executor(executor: DurableExecutor) -> None:
    probes = define_probes(executor)
    async with executor:
        await run_probes(executor, probes, 1)
    async with executor:
        await run_probes(executor, probes, 2)
    assert executor.state is ExecutorState.SHUT_DOWN


async def test_while_shut_down_work_is_refused_until_the_next_start(
    executor: DurableExecutor,
) -> None:
    probes = define_probes(executor)
    async with executor:
        handle = await executor.enqueue_task(probes[1], 1)
        done = await handle.wait_and_get_execution(timeout=10)
    with pytest.raises(ExecutorShutdownError, match=r"start\(\) starts it again"):
        executor.task(id="later", timeout_ms=1000, run=lambda ctx, i: i)
    with pytest.raises(ExecutorShutdownError):
        await executor.enqueue_task(probes[1], 2)
    with pytest.raises(ExecutorShutdownError):
        await executor.get_task_handle(probes[1], handle.execution_id)
    assert (await handle.get_execution()).output == done.output  # handles still read
    async with executor:
        later = executor.task(id="later", timeout_ms=1000, run=lambda ctx, i: i * 3)
        again = await executor.get_task_handle(probes[1], handle.execution_id)
        assert (await again.get_execution()).output == done.output
        assert (await (await executor.enqueue_task(later, 5)).wait_and_get_execution()).output == 15


async def test_a_run_given_back_at_shutdown_runs_again_after_the_restart(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(shutdown_timeout_ms=50)
    started = asyncio.Event()
    runs: list[int] = []

    @executor.task(id="stubborn", timeout_ms=30_000)
    async def stubborn(ctx: TaskContext, input: None) -> str:
        runs.append(ctx.attempt)
        if len(runs) == 1:
            started.set()
            await asyncio.sleep(60)  # stopped by the shutdown, never ends by itself
        return "second run"

    await executor.start()
    handle = await executor.enqueue_task(stubborn)
    await asyncio.wait_for(started.wait(), 10)
    await executor.shutdown()
    assert (await handle.get_execution()).status is S.READY
    await executor.start()
    finished = await handle.wait_and_get_execution(timeout=10)
    assert (finished.status, finished.output, runs) == (S.COMPLETED, "second run", [0, 0])


async def test_start_during_a_shutdown_waits_for_it_then_starts(
    executor: DurableExecutor,
) -> None:
    probes = define_probes(executor)
    release = threading.Event()

    def blocks(ctx: TaskContext, input: None) -> str:
        release.wait(10)
        return "released"

    blocker = executor.task(id="blocks", timeout_ms=20_000, run=blocks)
    await executor.start()
    handle = await executor.enqueue_task(blocker)
    await wait_until(lambda: executor._engine.running, message="the blocker to run")
    shutting_down = asyncio.ensure_future(executor.shutdown())
    await wait_until(lambda: executor.state is ExecutorState.SHUTTING_DOWN)
    starting = asyncio.ensure_future(executor.start())
    await asyncio.sleep(0)
    assert not starting.done()  # waits for the shutdown (the blocker still runs)
    release.set()
    await asyncio.gather(shutting_down, starting)
    assert executor.state is ExecutorState.STARTED
    assert (await handle.get_execution()).output == "released"
    await run_probes(executor, probes, 7)


async def test_concurrent_starts_start_the_loops_once(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    gated = GatedStorage(storage)
    executor = make_executor(gated)
    for cycle in (1, 2):
        gated.gate.clear()
        starts = asyncio.gather(executor.start(), executor.start(), executor.start())
        await wait_until(lambda: gated.waiting, message="the start to reach the storage")
        assert not background_loops()
        gated.gate.set()
        await starts
        assert background_loops()["durable-execution-run"] == 1
        assert gated.calls["initialize"] == cycle
        await executor.shutdown()


async def test_shutdown_during_start_waits_for_the_start(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    gated = GatedStorage(storage)
    executor = make_executor(gated)
    gated.gate.clear()
    starting = asyncio.ensure_future(executor.start())
    await wait_until(lambda: gated.waiting, message="the start to reach the storage")
    shutting_down = asyncio.ensure_future(executor.shutdown())
    await asyncio.sleep(0.01)
    assert not shutting_down.done()  # waits for the start
    assert executor.state is ExecutorState.NEW
    gated.gate.set()
    await asyncio.gather(starting, shutting_down)
    assert executor.state is ExecutorState.SHUT_DOWN
    assert not background_loops()


# -- a storage the executor created itself ----------------------------------------------------


@contextlib.asynccontextmanager
async def storage_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path}/owned.db"
    else:
        from .pg import POSTGRES_DSN, fresh_schema

        async with fresh_schema("owned") as schema:
            yield f"{POSTGRES_DSN}?schema={schema}"


class CountingStorage(DelegatingStorage):
    """Delegates to a real storage, counting ``initialize`` and ``close`` calls."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.calls = collections.Counter[str]()

    async def initialize(self) -> None:
        self.calls["initialize"] += 1
        await self.inner.initialize()

    async def close(self) -> None:
        self.calls["close"] += 1
        await self.inner.close()


class GatedStorage(CountingStorage):
    """A :class:`CountingStorage` whose ``initialize`` waits until ``gate`` is set."""

    def __init__(self, inner: DurableStorage) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = False

    async def initialize(self) -> None:
        self.waiting = True
        await self.gate.wait()
        self.waiting = False
        await super().initialize()


async def test_a_storage_from_the_url_is_closed_at_shutdown_and_reopened_at_start(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with storage_url(backend, tmp_path) as url:
        monkeypatch.setenv(STORAGE_URL_ENV, url)
        monkeypatch.setattr(
            executor_module, "default_storage", lambda: CountingStorage(default_storage())
        )
        executor = DurableExecutor(background_process_interval_ms=20)
        storage = executor.storage
        assert isinstance(storage, CountingStorage)
        probes = define_probes(executor)
        try:
            for cycle in range(1, 4):
                await executor.start()
                assert (storage.calls["initialize"], storage.calls["close"]) == (cycle, cycle - 1)
                await run_probes(executor, probes, cycle)
                await executor.shutdown()
                assert (storage.calls["initialize"], storage.calls["close"]) == (cycle, cycle)
        finally:
            await executor.shutdown()
            await storage.inner.close()
